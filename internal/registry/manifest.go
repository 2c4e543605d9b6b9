package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/plumbline/plumbline/internal/blob"
)

// Entry types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Modes kept in a manifest: only whether a file is executable survives, so
// identical content has an identical digest whatever the umask.
const (
	ModeFile uint32 = 0o644
	ModeExec uint32 = 0o755
	ModeDir  uint32 = 0o755
)

// ManifestVersion is the only manifest format this package writes and reads.
const ManifestVersion = 1

// maxManifestBytes bounds how much of a blob is read as a manifest.
const maxManifestBytes = 64 << 20

// Manifest describes an artifact: every entry of the tree, sorted by path.
// Its canonical JSON encoding (json.Marshal of this struct) is stored as a
// blob, and that blob's digest is the artifact's identity.
type Manifest struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Entry is one file, folder or symlink of an artifact.
type Entry struct {
	// Path is slash-separated and relative ("models/crate.bin").
	Path string `json:"path"`
	Type string `json:"type"`
	// Mode is 0644 or 0755 for files, 0755 for folders, 0 for symlinks (in
	// JSON a decimal number: 420, 493).
	Mode uint32 `json:"mode,omitempty"`
	// Size and Digest are the file's; empty for folders and symlinks.
	Size   int64  `json:"size,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Target is a symlink's target, relative and inside the tree.
	Target string `json:"target,omitempty"`
}

// Executable reports whether a file entry has the exec bit.
func (e Entry) Executable() bool { return e.Type == TypeFile && e.Mode == ModeExec }

// Root is the single top-level name when there is exactly one ("models",
// "crate.bin"), else "".
func (m Manifest) Root() string {
	root := ""
	for _, e := range m.Entries {
		if !strings.Contains(e.Path, "/") {
			if root != "" {
				return ""
			}
			root = e.Path
		}
	}
	return root
}

// Files is the number of file entries.
func (m Manifest) Files() int {
	n := 0
	for _, e := range m.Entries {
		if e.Type == TypeFile {
			n++
		}
	}
	return n
}

// Size is the total size of the files.
func (m Manifest) Size() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// encode returns the canonical encoding and its digest.
func (m Manifest) encode() ([]byte, string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, "", err
	}
	return b, blob.Digest(b), nil
}

// parseManifest decodes b and checks it is exactly what this package writes:
// canonical, sorted, every path and link safe. Anything else (say, a file
// blob that happens to be JSON) is refused, so a digest that is not an
// artifact can never be materialized.
func parseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, err
	}
	if m.Version != ManifestVersion {
		return Manifest{}, fmt.Errorf("manifest version %d, want %d", m.Version, ManifestVersion)
	}
	if canon, _, err := m.encode(); err != nil || !bytes.Equal(canon, b) {
		return Manifest{}, errors.New("not in canonical form")
	}
	t := newTree(Limits{MaxBytes: -1, MaxFiles: -1})
	for i, e := range m.Entries {
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return Manifest{}, fmt.Errorf("entries not sorted at %q", e.Path)
		}
		if p, err := cleanPath(e.Path); err != nil || p != e.Path {
			return Manifest{}, fmt.Errorf("entry path %q is not clean", e.Path)
		}
		var err error
		switch {
		case e.Type == TypeDir && e.Mode == ModeDir && e.Size == 0 && e.Digest == "" && e.Target == "":
			err = t.addDir(e.Path)
		case e.Type == TypeFile && (e.Mode == ModeFile || e.Mode == ModeExec) && e.Size >= 0 &&
			blob.ValidDigest(e.Digest) && e.Target == "":
			err = t.addFile(e.Path, e.Mode == ModeExec, e.Size, e.Digest)
		case e.Type == TypeSymlink && e.Mode == 0 && e.Size == 0 && e.Digest == "":
			err = t.addSymlink(e.Path, e.Target)
		default:
			err = fmt.Errorf("entry %q: bad type, mode or fields", e.Path)
		}
		if err != nil {
			return Manifest{}, err
		}
	}
	if err := t.checkLinks(""); err != nil {
		return Manifest{}, err
	}
	if got := t.manifest(); !slices.Equal(got.Entries, m.Entries) {
		return Manifest{}, errors.New("folders missing from the entries")
	}
	return m, nil
}

// tree accumulates the entries of an artifact as an archive or a folder is
// read, enforcing the safety rules and limits as it goes.
type tree struct {
	lim      Limits
	entries  map[string]*Entry
	explicit map[string]bool // paths added by an entry, not implied by a child
	count    int             // entries added, for MaxFiles
	bytes    int64           // file bytes, for MaxBytes
}

func newTree(lim Limits) *tree {
	return &tree{lim: lim, entries: map[string]*Entry{}, explicit: map[string]bool{}}
}

func unsafeEntry(name, reason string) error {
	return &EntryError{Entry: name, Reason: reason, Err: ErrUnsafeEntry}
}

// cleanPath turns an archive name into a clean relative path: "./a//b/" is
// "a/b", "." and "./" are "" (the root). It refuses absolute paths, ".."
// components, NUL and invalid UTF-8.
func cleanPath(name string) (string, error) {
	switch {
	case !utf8.ValidString(name):
		return "", unsafeEntry(name, "name is not valid UTF-8")
	case strings.ContainsRune(name, 0):
		return "", unsafeEntry(name, "name contains a NUL byte")
	case strings.HasPrefix(name, "/"):
		return "", unsafeEntry(name, "absolute path")
	}
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", unsafeEntry(name, `path has a ".." component`)
		default:
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

// admit counts one entry and size bytes against the limits.
func (t *tree) admit(name string, size int64) error {
	t.count++
	if t.lim.MaxFiles >= 0 && t.count > t.lim.MaxFiles {
		return &EntryError{Entry: name, Err: ErrTooLarge,
			Reason: fmt.Sprintf("archive has more than %d entries; pack many small files into one (e.g. a .tar.gz inside the model folder)", t.lim.MaxFiles)}
	}
	t.bytes += size
	if t.lim.MaxBytes >= 0 && (size > t.lim.MaxBytes || t.bytes > t.lim.MaxBytes) {
		return &EntryError{Entry: name, Err: ErrTooLarge,
			Reason: fmt.Sprintf("archive holds more than %s of file data", humanBytes(t.lim.MaxBytes))}
	}
	return nil
}

// put adds e at p (clean, non-empty), creating implied parent folders.
func (t *tree) put(e Entry) error {
	p := e.Path
	if p == "" {
		return unsafeEntry(p, "empty path")
	}
	if clean, err := cleanPath(p); err != nil {
		return err
	} else if clean != p {
		return unsafeEntry(p, "path is not clean")
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		parent := p[:i]
		switch pe := t.entries[parent]; {
		case pe == nil:
			t.entries[parent] = &Entry{Path: parent, Type: TypeDir, Mode: ModeDir}
		case pe.Type != TypeDir:
			return unsafeEntry(p, fmt.Sprintf("parent %q is a %s, not a folder", parent, pe.Type))
		}
	}
	if old := t.entries[p]; old != nil {
		if t.explicit[p] || e.Type != TypeDir || old.Type != TypeDir {
			return unsafeEntry(p, "duplicate path")
		}
	}
	t.entries[p] = &e
	t.explicit[p] = true
	return nil
}

func (t *tree) addDir(p string) error {
	if p == "" { // the archive's "./": nothing to record
		return nil
	}
	return t.put(Entry{Path: p, Type: TypeDir, Mode: ModeDir})
}

func (t *tree) addFile(p string, exec bool, size int64, digest string) error {
	mode := ModeFile
	if exec {
		mode = ModeExec
	}
	return t.put(Entry{Path: p, Type: TypeFile, Mode: mode, Size: size, Digest: digest})
}

// addHardlink records p as a copy of the file target already in the tree.
func (t *tree) addHardlink(p, target string) error {
	te := t.entries[target]
	if target == "" || te == nil || te.Type != TypeFile {
		return unsafeEntry(p, fmt.Sprintf("hard link to %q, which is not a file earlier in the archive", target))
	}
	return t.put(Entry{Path: p, Type: TypeFile, Mode: te.Mode, Size: te.Size, Digest: te.Digest})
}

// addSymlink records a symlink after the checks that need no other entry:
// the target is relative and, read lexically, stays inside the tree.
// checkLinks does the rest once the tree is complete.
func (t *tree) addSymlink(p, target string) error {
	switch {
	case target == "":
		return unsafeEntry(p, "symlink with an empty target")
	case !utf8.ValidString(target) || strings.ContainsRune(target, 0):
		return unsafeEntry(p, "symlink target is not valid UTF-8 or contains NUL")
	case strings.HasPrefix(target, "/"):
		return escapes(p, fmt.Sprintf("symlink to absolute path %q", target))
	}
	if rel := path.Join(path.Dir(p), target); rel == ".." || strings.HasPrefix(rel, "../") {
		return escapes(p, fmt.Sprintf("symlink to %q leaves the tree", target))
	}
	return t.put(Entry{Path: p, Type: TypeSymlink, Target: target})
}

// maxHops bounds symlink expansions while resolving one link, as the
// kernel's ELOOP does.
const maxHops = 40

// checkLinks follows every symlink through the tree (through other symlinks
// too) and refuses any that could lead outside it, or that loop. With
// within set, a link must also end inside that top-level folder.
func (t *tree) checkLinks(within string) error {
	var links []string
	for p, e := range t.entries {
		if e.Type == TypeSymlink {
			links = append(links, p)
		}
	}
	sort.Strings(links)
	for _, p := range links {
		hops := 0
		dir := strings.Split(path.Dir(p), "/")
		if path.Dir(p) == "." {
			dir = nil
		}
		end, err := t.resolve(dir, t.entries[p].Target, &hops)
		if err == nil && within != "" && (len(end) == 0 || end[0] != within) {
			err = errEscapes
		}
		if errors.Is(err, errEscapes) {
			return escapes(p, fmt.Sprintf("symlink to %q leaves the tree", t.entries[p].Target))
		}
		if err != nil {
			return unsafeEntry(p, fmt.Sprintf("symlink to %q %v", t.entries[p].Target, err))
		}
	}
	return nil
}

var errEscapes = errors.New("leaves the tree")

// escapes is the error for a symlink that is absolute or leads out.
func escapes(p, reason string) error {
	return &EntryError{Entry: p, Reason: reason, Err: errors.Join(ErrUnsafeEntry, errEscapes)}
}

// resolve walks target from the folder dir (components), expanding
// symlinks found in the tree, and returns where it ends. Components that do
// not exist are taken lexically.
func (t *tree) resolve(dir []string, target string, hops *int) ([]string, error) {
	cur := slices.Clone(dir)
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return nil, errEscapes
			}
			cur = cur[:len(cur)-1]
			continue
		}
		cur = append(cur, c)
		e := t.entries[strings.Join(cur, "/")]
		if e == nil || e.Type != TypeSymlink {
			continue
		}
		if *hops++; *hops > maxHops {
			return nil, errors.New("loops (too many levels of symbolic links)")
		}
		next, err := t.resolve(cur[:len(cur)-1], e.Target, hops)
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// manifest returns the tree's entries, sorted.
func (t *tree) manifest() Manifest {
	m := Manifest{Version: ManifestVersion, Entries: make([]Entry, 0, len(t.entries))}
	for _, e := range t.entries {
		m.Entries = append(m.Entries, *e)
	}
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	return m
}

// symlinks returns the tree's symlinks, sorted.
func (t *tree) symlinks() []Entry {
	var out []Entry
	for _, e := range t.manifest().Entries {
		if e.Type == TypeSymlink {
			out = append(out, e)
		}
	}
	return out
}

func fileMode(e Entry) fs.FileMode {
	switch {
	case e.Type == TypeDir || e.Executable():
		return 0o755
	case e.Type == TypeSymlink:
		return 0o777
	}
	return 0o644
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
