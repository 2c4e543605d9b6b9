package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
)

// Kinds of Problem.
const (
	// ProblemCorruptBlob: a blob's bytes do not hash to its name.
	ProblemCorruptBlob = "corrupt-blob"
	// ProblemMissingBlob: a referenced artifact, or a file of one, has no blob.
	ProblemMissingBlob = "missing-blob"
	// ProblemUnreadableArtifact: a referenced digest's manifest cannot be read.
	ProblemUnreadableArtifact = "unreadable-artifact"
	// ProblemDamagedCache: a materialized tree differs from its artifact.
	ProblemDamagedCache = "damaged-cache"
	// ProblemPartial: a temporary file or folder of a write that never finished.
	ProblemPartial = "partial-write"
	// ProblemStray: a file in the blob store whose name is not a digest.
	ProblemStray = "stray-file"
)

// DefaultMinAge is how old an unreferenced blob, cache tree or temporary
// file must be before the garbage collector (or fsck's repair, for
// temporary files) removes it: younger ones may belong to an upload or a
// deployment still in progress.
const DefaultMinAge = time.Hour

// Problem is one thing fsck found.
type Problem struct {
	Kind string `json:"kind"`
	// Digest is the blob or artifact concerned, if any.
	Digest string `json:"digest,omitempty"`
	// Path is the file or folder on the server.
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail"`
	// Files are the artifacts (and paths inside them) holding the blob.
	Files []FileRef `json:"files,omitempty"`
	// UsedBy names the records that use it: "model iris:1",
	// "deployment r-endpoint-iris/blue".
	UsedBy []string `json:"used_by,omitempty"`
	// Repaired says the repair fixed it; Action says what was done, or what
	// to do.
	Repaired bool   `json:"repaired,omitempty"`
	Action   string `json:"action,omitempty"`
}

// FsckReport is what Fsck checked and found.
type FsckReport struct {
	Repair bool `json:"repair"`
	// Blobs and Bytes: the blobs re-hashed. Artifacts: the referenced
	// artifacts checked. CacheTrees: the materialized trees checked.
	Blobs      int       `json:"blobs"`
	Bytes      int64     `json:"bytes"`
	Artifacts  int       `json:"artifacts"`
	CacheTrees int       `json:"cache_trees"`
	Problems   []Problem `json:"problems"`
}

// OK reports whether nothing is left to fix.
func (r FsckReport) OK() bool {
	for _, p := range r.Problems {
		if !p.Repaired {
			return false
		}
	}
	return true
}

// FsckOptions tune Fsck.
type FsckOptions struct {
	// Repair restores corrupt or missing blobs from good copies (files of
	// materialized trees that are not the bad blob itself), evicts damaged
	// cache trees, and removes temporary files older than MinAge.
	Repair bool
	// MinAge: zero means DefaultMinAge; negative means none.
	MinAge time.Duration
	// Progress, if set, is called as blobs are hashed, with the bytes done
	// and the total.
	Progress func(done, total int64)
}

func (o FsckOptions) minAge() time.Duration {
	switch {
	case o.MinAge == 0:
		return DefaultMinAge
	case o.MinAge < 0:
		return 0
	}
	return o.MinAge
}

// Fsck checks the registry against the store: every blob is re-hashed
// (blob.FS.Verify: also bytes that changed without a write), every
// artifact a model version, endpoint or deployment references is checked
// for its manifest and file blobs, and every materialized tree is checked
// against its artifact. Each problem names the blob, the files that hold it
// and the models and deployments that use it. With Repair it fixes what it
// can from good copies on the server and says, for the rest, how to fix
// it. It does not stop at the first problem; the error is for a check that
// could not run (the store unreachable, the context ended).
func (r *Registry) Fsck(ctx context.Context, opts FsckOptions) (FsckReport, error) {
	rep := FsckReport{Repair: opts.Repair, Problems: []Problem{}}
	refs, err := r.collectReferences(ctx)
	if err != nil {
		return rep, fmt.Errorf("fsck: %w", err)
	}

	// 1. Every blob, re-hashed.
	var blobs []blob.Info
	var total int64
	if err := r.blobs.Walk(ctx, func(in blob.Info) error {
		if in.Digest == "" {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemStray, Path: in.Path,
				Detail: "a file in the blob store whose name is not a sha256 digest; plumbline never writes one: move it out of the data dir",
				Action: "left in place"})
			return nil
		}
		blobs = append(blobs, in)
		total += in.Size
		return nil
	}); err != nil {
		return rep, fmt.Errorf("fsck: walk blobs: %w", err)
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Digest < blobs[j].Digest })
	bad := map[string]*Problem{} // by digest: corrupt or missing blobs
	var done int64
	for _, in := range blobs {
		err := r.blobs.Verify(ctx, in.Digest)
		done += in.Size
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
		var ce *blob.CorruptError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			bad[in.Digest] = &Problem{Kind: ProblemCorruptBlob, Digest: in.Digest, Path: in.Path,
				Detail: fmt.Sprintf("its bytes hash to %s", ce.Got)}
		case errors.Is(err, blob.ErrNotFound):
			continue // removed meanwhile (a garbage collection)
		case ctx.Err() != nil:
			return rep, fmt.Errorf("fsck: %w", ctx.Err())
		default:
			bad[in.Digest] = &Problem{Kind: ProblemCorruptBlob, Digest: in.Digest, Path: in.Path,
				Detail: "cannot be read: " + err.Error()}
		}
		rep.Blobs++
		rep.Bytes += in.Size
	}

	// 2. Every referenced artifact: its manifest and its files' blobs.
	var unreadable []Problem
	for d, err := range refs.unreadable {
		if errors.Is(err, blob.ErrCorrupt) {
			continue // reported as a corrupt blob, with its users, below
		}
		if !r.blobs.Has(d) {
			bad[d] = &Problem{Kind: ProblemMissingBlob, Digest: d, Path: r.blobs.Path(d),
				Detail: "the artifact's manifest is not in the blob store"}
			continue
		}
		unreadable = append(unreadable, Problem{Kind: ProblemUnreadableArtifact, Digest: d, Path: r.blobs.Path(d),
			Detail: err.Error(), UsedBy: refs.usersOf(d)})
	}
	rep.Artifacts = len(refs.manifests) + len(refs.unreadable)
	for d := range refs.files {
		if _, ok := bad[d]; !ok && !r.blobs.Has(d) {
			bad[d] = &Problem{Kind: ProblemMissingBlob, Digest: d, Path: r.blobs.Path(d),
				Detail: "a file of a referenced artifact has no blob"}
		}
	}

	// 3. Repair bad blobs from good copies in the cache.
	for d, p := range bad {
		p.Files, p.UsedBy = refs.files[d], refs.usersOf(d)
		if len(p.UsedBy) == 0 && p.Kind == ProblemCorruptBlob {
			p.Action = "nothing references it: plumbline gc removes it"
			continue
		}
		if opts.Repair {
			if from, ok := r.repairFromCache(ctx, d, refs.files[d]); ok {
				p.Repaired, p.Action = true, "restored from the good copy "+from
				continue
			}
		}
		p.Action = repairHint(p)
	}

	// 4. Materialized trees, after the repairs (a tree hard-linked to a blob
	// that was corrupt still shows the bad bytes and is evicted).
	cacheProblems, trees, err := r.fsckCache(ctx, opts)
	if err != nil {
		return rep, err
	}
	rep.CacheTrees = trees

	// 5. Temporary files of writes that never finished.
	partial, err := r.fsckPartial(opts)
	if err != nil {
		return rep, err
	}

	for _, p := range bad {
		rep.Problems = append(rep.Problems, *p)
	}
	rep.Problems = append(rep.Problems, unreadable...)
	rep.Problems = append(rep.Problems, cacheProblems...)
	rep.Problems = append(rep.Problems, partial...)
	sort.SliceStable(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.Kind != b.Kind {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		if a.Digest != b.Digest {
			return a.Digest < b.Digest
		}
		return a.Path < b.Path
	})
	return rep, nil
}

func kindOrder(k string) int {
	for i, o := range []string{ProblemCorruptBlob, ProblemMissingBlob, ProblemUnreadableArtifact, ProblemDamagedCache, ProblemPartial, ProblemStray} {
		if k == o {
			return i
		}
	}
	return 99
}

// repairHint says how a user fixes a bad blob fsck could not repair.
func repairHint(p *Problem) string {
	if len(p.Files) == 0 {
		return "upload the artifact again (plumbline model create, or the deployment's create), or run plumbline fsck --repair --from <the folder it came from>"
	}
	f := p.Files[0]
	return fmt.Sprintf("upload the right bytes: plumbline fsck --repair --from <a folder holding %s> (or register the model or code again)", f.Path)
}

// repairFromCache looks for a good copy of a blob among the materialized
// trees holding it (a copy, or a hard link to an older inode of the blob)
// and stores it. It returns the copy used.
func (r *Registry) repairFromCache(ctx context.Context, digest string, files []FileRef) (string, bool) {
	blobFI, _ := os.Stat(r.blobs.Path(digest))
	for _, f := range files {
		p := filepath.Join(r.cacheDir, f.Artifact[len(blob.Prefix):], filepath.FromSlash(f.Path))
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || (blobFI != nil && os.SameFile(fi, blobFI)) {
			continue
		}
		file, err := os.Open(p)
		if err != nil {
			continue
		}
		_, err = r.blobs.PutDigest(ctx, file, digest)
		file.Close()
		if err == nil {
			return p, true
		}
	}
	return "", false
}

// fsckCache checks every materialized tree in full (each file re-hashed
// unless it is a hard link to a blob verified in this run) and, with
// repair, evicts the damaged ones.
func (r *Registry) fsckCache(ctx context.Context, opts FsckOptions) ([]Problem, int, error) {
	entries, err := os.ReadDir(r.cacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fsck: cache: %w", err)
	}
	var out []Problem
	trees := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // temporary: fsckPartial
		}
		p := filepath.Join(r.cacheDir, name)
		digest := blob.Prefix + name
		if !blob.ValidDigest(digest) {
			out = append(out, Problem{Kind: ProblemStray, Path: p,
				Detail: "a file in the cache whose name is not a digest; plumbline never writes one", Action: "left in place"})
			continue
		}
		trees++
		_, err := r.exclusive(ctx, digest, func() (string, error) {
			m, err := r.Manifest(ctx, digest)
			if err == nil {
				r.forgetStamps(p)
				err = r.verifyTree(ctx, p, m)
			}
			if err == nil {
				return "", nil
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			prob := Problem{Kind: ProblemDamagedCache, Digest: digest, Path: p, Detail: err.Error(),
				Action: "evicted at the next use and rebuilt from the blobs"}
			if opts.Repair {
				if eerr := r.evictDir(p); eerr != nil {
					prob.Action = "eviction failed: " + eerr.Error()
				} else {
					prob.Repaired, prob.Action = true, "evicted; rebuilt from the blobs at the next use"
				}
			}
			out = append(out, prob)
			return "", nil
		})
		if err != nil {
			return nil, trees, fmt.Errorf("fsck: cache: %w", err)
		}
	}
	return out, trees, nil
}

// fsckPartial reports (and with repair removes, once older than MinAge)
// the temporary files and folders of writes that never finished.
func (r *Registry) fsckPartial(opts FsckOptions) ([]Problem, error) {
	var out []Problem
	for _, dir := range []string{r.blobs.Dir(), r.cacheDir} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fsck: %w", err)
		}
		for _, e := range entries {
			if !isPartial(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			fi, err := e.Info()
			if err != nil {
				continue
			}
			age := time.Since(fi.ModTime()).Round(time.Second)
			prob := Problem{Kind: ProblemPartial, Path: p,
				Detail: fmt.Sprintf("a write that never finished, last written %s ago", age)}
			switch {
			case age < opts.minAge():
				prob.Action = fmt.Sprintf("left: younger than %s, it may be an upload in progress", opts.minAge())
			case opts.Repair:
				if err := removeTree(p); err != nil {
					prob.Action = "removal failed: " + err.Error()
				} else {
					prob.Repaired, prob.Action = true, "removed"
				}
			default:
				prob.Action = "removed by plumbline fsck --repair, by plumbline gc, and at the next server start"
			}
			out = append(out, prob)
		}
	}
	return out, nil
}

func isPartial(name string) bool {
	return strings.HasPrefix(name, ".put-") || strings.HasPrefix(name, buildPrefix) || strings.HasPrefix(name, evictPrefix)
}

// RemovePartial removes what writes that never finished left behind (a
// kill -9 during an upload or a materialization): temporary blob files and
// temporary cache folders. Call it only when nothing else writes to the
// data dir: the server does at start, holding the data dir's lock.
func (r *Registry) RemovePartial() (files int, bytes int64, err error) {
	files, bytes, err = r.blobs.RemovePartial()
	entries, rerr := os.ReadDir(r.cacheDir)
	if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return files, bytes, errors.Join(err, rerr)
	}
	for _, e := range entries {
		if !isPartial(e.Name()) {
			continue
		}
		p := filepath.Join(r.cacheDir, e.Name())
		n := treeBytes(p, false)
		if rerr := removeTree(p); rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		files++
		bytes += n
	}
	return files, bytes, err
}

// treeBytes adds up the sizes of the regular files under p; with freed set,
// only of those with no other hard link (removing the tree frees those).
func treeBytes(p string, freed bool) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && (!freed || blob.Links(fi) <= 1) {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
