package registry

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/blob"
)

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, Limits{})
	src := writeFolder(t, t.TempDir())

	var up bytes.Buffer
	var calls int
	var last, total int64
	if err := WriteTar(bg, &up, src, func(done, tot int64) { calls++; last, total = done, tot }); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != total || total != 300_000+18+8+5 {
		t.Errorf("progress: got %d calls ending %d/%d, want several ending at the total", calls, last, total)
	}
	art, err := f.reg.Ingest(bg, bytes.NewReader(up.Bytes()), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Artifact{Digest: art.Digest, Files: 5, Size: 300_000 + 18 + 8 + 5, Root: "models"}
	if diff := cmp.Diff(want, art); diff != "" {
		t.Errorf("Artifact (-want +got):\n%s", diff)
	}
	local, err := LocalDigest(src)
	if err != nil {
		t.Fatal(err)
	}
	if local != art.Digest {
		t.Errorf("LocalDigest: got %s, want Ingest's %s", local, art.Digest)
	}
	if !f.reg.Has(bg, art.Digest) {
		t.Errorf("Has(%s): got false, want true", art.Digest)
	}

	var down bytes.Buffer
	if err := f.reg.WriteTar(bg, art.Digest, &down); err != nil {
		t.Fatal(err)
	}
	// Deterministic: the server's tar is the client's tar byte for byte.
	if !bytes.Equal(down.Bytes(), up.Bytes()) {
		t.Errorf("server tar differs from client tar (%d vs %d bytes)", down.Len(), up.Len())
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := ExtractTar(bg, &down, dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snapshot(t, src), snapshot(t, filepath.Join(dst, "models"))); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}
	if got := listOutside(t, dst, "models"); len(got) != 0 {
		t.Errorf("extra entries in %s: %v", dst, got)
	}
}

func TestSingleFile(t *testing.T) {
	f := newFixture(t, Limits{})
	p := filepath.Join(t.TempDir(), "crate.bin")
	if err := os.WriteFile(p, []byte("crate"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTar(bg, &buf, p, nil); err != nil {
		t.Fatal(err)
	}
	art, err := f.reg.Ingest(bg, &buf, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if art.Root != "crate.bin" || art.Files != 1 || art.Size != 5 {
		t.Errorf("got %+v, want root crate.bin, 1 file, 5 bytes", art)
	}
	m, err := f.reg.Manifest(bg, art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Path: "crate.bin", Type: TypeFile, Mode: ModeFile, Size: 5, Digest: blob.Digest([]byte("crate"))}}
	if diff := cmp.Diff(want, m.Entries); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
}

// TestSameContentSameDigest: times, owners, umask-dependent modes, gzip,
// "./" prefixes and missing folder entries do not change the digest.
func TestSameContentSameDigest(t *testing.T) {
	f := newFixture(t, Limits{})
	canonical := makeTar(t, false,
		dir("m"), file("m/a.txt", "A"), entry{name: "m/run", typ: tar.TypeReg, body: "#!", mode: 0o755},
		dir("m/d"), symlink("m/d/l", "../a.txt"))
	ref, err := f.reg.Ingest(bg, bytes.NewReader(canonical), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tar  []byte
	}{
		{"gzip", makeTar(t, true,
			dir("m"), file("m/a.txt", "A"), entry{name: "m/run", typ: tar.TypeReg, body: "#!", mode: 0o755},
			dir("m/d"), symlink("m/d/l", "../a.txt"))},
		{"other order, implied folders, other modes", makeTar(t, false,
			symlink("m/d/l", "../a.txt"), entry{name: "m/run", typ: tar.TypeReg, body: "#!", mode: 0o700},
			entry{name: "m/a.txt", typ: tar.TypeReg, body: "A", mode: 0o600})},
		{"dot prefixes", makeTar(t, false,
			dir("./"), dir("./m/"), file("./m/a.txt", "A"), entry{name: "./m/run", typ: tar.TypeReg, body: "#!", mode: 0o711},
			dir("./m/d/"), symlink("./m//d/l", "../a.txt"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art, err := f.reg.Ingest(bg, bytes.NewReader(tt.tar), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if art != ref {
				t.Errorf("got %+v, want %+v", art, ref)
			}
		})
	}

	t.Run("local folder with other mtimes and modes", func(t *testing.T) {
		a := writeFolder(t, t.TempDir())
		b := writeFolder(t, t.TempDir())
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
			if d.Type()&fs.ModeSymlink == 0 {
				os.Chtimes(p, old, old)
			}
			return nil
		})
		os.Chmod(filepath.Join(b, "crate.bin"), 0o444)
		os.Chmod(filepath.Join(b, "run.sh"), 0o700)
		da, err := LocalDigest(a)
		if err != nil {
			t.Fatal(err)
		}
		db, err := LocalDigest(b)
		if err != nil {
			t.Fatal(err)
		}
		if da != db {
			t.Errorf("LocalDigest: got %s and %s, want equal", da, db)
		}
		var buf bytes.Buffer
		if err := WriteTar(bg, &buf, b, nil); err != nil {
			t.Fatal(err)
		}
		art, err := f.reg.Ingest(bg, &buf, Limits{})
		if err != nil || art.Digest != da {
			t.Errorf("Ingest: got %s (%v), want %s", art.Digest, err, da)
		}
	})
}

// hostile lists archives every reader must refuse, with the entry named in
// the error and the sentinel it wraps.
func hostile(t testing.TB) []hostileTar {
	hostileOnce.Do(func() { hostileTars = makeHostile(t) })
	return hostileTars
}

type hostileTar struct {
	name  string
	tar   []byte
	lim   Limits
	entry string
	err   error
}

var (
	hostileOnce sync.Once
	hostileTars []hostileTar
)

func makeHostile(t testing.TB) []hostileTar {
	zeros := func(name string, n int64) entry { return entry{name: name, typ: tar.TypeReg, size: n, mode: 0o644} }
	return []hostileTar{
		{"dot-dot", makeTar(t, false, file("../x", "x")), Limits{}, "../x", ErrUnsafeEntry},
		{"absolute", makeTar(t, false, file("/etc/passwd", "x")), Limits{}, "/etc/passwd", ErrUnsafeEntry},
		{"dot-dot inside", makeTar(t, false, file("a/../../x", "x")), Limits{}, "a/../../x", ErrUnsafeEntry},
		{"dot-dot that stays inside", makeTar(t, false, dir("a"), file("a/../x", "x")), Limits{}, "a/../x", ErrUnsafeEntry},
		{"symlink absolute", makeTar(t, false, symlink("etc", "/etc")), Limits{}, "etc", ErrUnsafeEntry},
		{"symlink up", makeTar(t, false, symlink("a", "../..")), Limits{}, "a", ErrUnsafeEntry},
		{"symlink up from folder", makeTar(t, false, dir("d"), symlink("d/l", "../../x")), Limits{}, "d/l", ErrUnsafeEntry},
		{"symlink chain", makeTar(t, false, dir("d"), symlink("d/l2", ".."), symlink("l3", "d/l2/..")), Limits{}, "l3", ErrUnsafeEntry},
		{"symlink loop", makeTar(t, false, symlink("a", "b"), symlink("b", "a")), Limits{}, "a", ErrUnsafeEntry},
		{"symlink empty", makeTar(t, false, symlink("a", "")), Limits{}, "a", ErrUnsafeEntry},
		{"write through symlink", makeTar(t, false, dir("sub"), symlink("l", "sub"), file("l/x", "x")), Limits{}, "l/x", ErrUnsafeEntry},
		{"hardlink outside", makeTar(t, false, hardlink("h", "../outside")), Limits{}, "h", ErrUnsafeEntry},
		{"hardlink absolute", makeTar(t, false, hardlink("h", "/etc/shadow")), Limits{}, "h", ErrUnsafeEntry},
		{"hardlink to later entry", makeTar(t, false, hardlink("h", "a"), file("a", "x")), Limits{}, "h", ErrUnsafeEntry},
		{"hardlink to folder", makeTar(t, false, dir("d"), hardlink("h", "d")), Limits{}, "h", ErrUnsafeEntry},
		{"char device", makeTar(t, false, entry{name: "null", typ: tar.TypeChar, mode: 0o666}), Limits{}, "null", ErrUnsafeEntry},
		{"block device", makeTar(t, false, entry{name: "sda", typ: tar.TypeBlock, mode: 0o666}), Limits{}, "sda", ErrUnsafeEntry},
		{"fifo", makeTar(t, false, entry{name: "p", typ: tar.TypeFifo, mode: 0o666}), Limits{}, "p", ErrUnsafeEntry},
		{"duplicate file", makeTar(t, false, file("a", "1"), file("a", "2")), Limits{}, "a", ErrUnsafeEntry},
		{"duplicate folder", makeTar(t, false, dir("a"), dir("a/")), Limits{}, "a/", ErrUnsafeEntry},
		{"file then folder", makeTar(t, false, file("a", "1"), dir("a")), Limits{}, "a", ErrUnsafeEntry},
		{"file under file", makeTar(t, false, file("a", "1"), file("a/b", "2")), Limits{}, "a/b", ErrUnsafeEntry},
		{"invalid UTF-8", patchName(t, makeTar(t, false, file("bad?.txt", "x")), "bad?", "bad\xff"), Limits{}, "bad\xff.txt", ErrUnsafeEntry},
		{"file over limit", makeTar(t, false, zeros("big", 1001)), Limits{MaxBytes: 1000}, "big", ErrTooLarge},
		{"total over limit", makeTar(t, false, zeros("a", 600), zeros("b", 600)), Limits{MaxBytes: 1000}, "b", ErrTooLarge},
		{"hardlinks count", makeTar(t, false, zeros("a", 600), hardlink("b", "a")), Limits{MaxBytes: 1000}, "b", ErrTooLarge},
		{"too many files", makeTar(t, false, file("a", ""), file("b", ""), dir("c"), file("d", "")), Limits{MaxFiles: 3}, "d", ErrTooLarge},
		{"gzip bomb", makeTar(t, true, zeros("bomb", 32<<20)), Limits{MaxBytes: 1 << 20}, "bomb", ErrTooLarge},
	}
}

// patchName replaces old with new in a ustar header's name and fixes the
// checksum, to build names archive/tar will not write.
func patchName(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(old))
	if i < 0 || i >= 100 || len(old) != len(new) {
		t.Fatalf("patchName: %q not in the first header", old)
	}
	b = bytes.Clone(b)
	copy(b[i:], new)
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	chk := strconv.FormatInt(int64(sum), 8)
	copy(b[148:156], strings.Repeat("0", 6-len(chk))+chk+"\x00 ")
	return b
}

func TestIngestRefuses(t *testing.T) {
	f := newFixture(t, Limits{})
	for _, tt := range hostile(t) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.reg.Ingest(bg, bytes.NewReader(tt.tar), tt.lim)
			checkEntryErr(t, err, tt.entry, tt.err)
		})
	}
	// No manifest was written for any of them.
	filepath.WalkDir(f.blobs.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			if digest := "sha256:" + d.Name(); f.reg.Has(bg, digest) {
				t.Errorf("a manifest was stored: %s", digest)
			}
		}
		return nil
	})
}

func checkEntryErr(t *testing.T, err error, entry string, sentinel error) {
	t.Helper()
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("got error %v, want an *EntryError", err)
	}
	if ee.Entry != entry {
		t.Errorf("entry: got %q, want %q (%v)", ee.Entry, entry, err)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("got %v, want it to wrap %v", err, sentinel)
	}
}

func TestExtractRefuses(t *testing.T) {
	for _, tt := range hostile(t) {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			err := ExtractTar(bg, bytes.NewReader(tt.tar), dst, tt.lim)
			checkEntryErr(t, err, tt.entry, tt.err)
			if got := listOutside(t, parent, "out"); len(got) != 0 {
				t.Errorf("written outside dst: %v", got)
			}
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type()&fs.ModeSymlink != 0 {
					t.Errorf("symlink created for a refused archive: %s", p)
				}
				return nil
			})
		})
	}
}

func TestExtractIntoExistingSymlink(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	dst := filepath.Join(parent, "out")
	for _, d := range []string{outside, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dst, "models")); err != nil {
		t.Fatal(err)
	}
	err := ExtractTar(bg, bytes.NewReader(makeTar(t, false, file("models/x", "x"))), dst, Limits{})
	if err == nil {
		t.Error("got nil error, want a refusal to follow dst/models outside dst")
	}
	if got := listOutside(t, outside); len(got) != 0 {
		t.Errorf("written through the symlink: %v", got)
	}
}

// TestExtractImpliedFolders: folders that only appear in entry names (no
// folder entry) are created, also for symlinks.
func TestExtractImpliedFolders(t *testing.T) {
	dst := t.TempDir()
	tarball := makeTar(t, false, file("a/b/c.txt", "c"), symlink("l/m/n", "../../a/b/c.txt"))
	if err := ExtractTar(bg, bytes.NewReader(tarball), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "l", "m", "n"))
	if err != nil || string(b) != "c" {
		t.Errorf("through the symlink: got %q (%v), want c", b, err)
	}
}

func TestExtractReplacesFiles(t *testing.T) {
	dst := t.TempDir()
	tarball := makeTar(t, false, dir("m"), file("m/a", "new"), entry{name: "m/x", typ: tar.TypeReg, body: "#!", mode: 0o755})
	if err := os.MkdirAll(filepath.Join(dst, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "m", "a"), []byte("old content"), 0o644)
	if err := ExtractTar(bg, bytes.NewReader(tarball), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "m", "a")); string(b) != "new" {
		t.Errorf("m/a: got %q, want new", b)
	}
	fi, err := os.Stat(filepath.Join(dst, "m", "x"))
	if err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("m/x: got mode %v (%v), want executable", fi.Mode(), err)
	}
}

func TestInvalidArchive(t *testing.T) {
	f := newFixture(t, Limits{})
	good := makeTar(t, true, file("a", strings.Repeat("x", 5000)))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty stream", nil},
		{"garbage", []byte("this is not a tar archive, not even close...")},
		{"empty tar", makeTar(t, false)},
		{"only the root folder", makeTar(t, false, dir("./"))},
		{"truncated gzip", good[:len(good)/2]},
		{"corrupt deflate", append(append(bytes.Clone(good[:10]), 0xff, 0xff, 0xff), good[13:]...)},
		{"truncated tar", makeTar(t, false, file("a", strings.Repeat("x", 5000)))[:1024]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.reg.Ingest(bg, bytes.NewReader(tt.data), Limits{})
			if !errors.Is(err, ErrBadArchive) {
				t.Errorf("got %v, want ErrBadArchive", err)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "a/b", "a/b", true},
		{"dot prefix", "./a/b/", "a/b", true},
		{"double slash", "a//b", "a/b", true},
		{"root", "./", "", true},
		{"NUL", "a\x00b", "", false},
		{"invalid UTF-8", "a\xffb", "", false},
		{"absolute", "/a", "", false},
		{"dot-dot", "a/../b", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanPath(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("cleanPath(%q): got %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestWriteTarRefusesLinksOut(t *testing.T) {
	tests := []struct {
		name, link, target string
	}{
		{"absolute", "etc", "/etc"},
		{"up", "up", "../.."},
		{"up from sub", "sub/up", "../../x"},
		{"through another link", "via", "sub/dot/.."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "models")
			os.MkdirAll(filepath.Join(root, "sub"), 0o755)
			os.WriteFile(filepath.Join(root, "a"), []byte("a"), 0o644)
			os.Symlink("..", filepath.Join(root, "sub", "dot"))
			if err := os.Symlink(tt.target, filepath.Join(root, filepath.FromSlash(tt.link))); err != nil {
				t.Fatal(err)
			}
			err := WriteTar(bg, &bytes.Buffer{}, root, nil)
			checkEntryErr(t, err, filepath.Join("models", filepath.FromSlash(tt.link)), ErrUnsafeEntry)
			if err != nil && !strings.Contains(err.Error(), "leaves the folder") {
				t.Errorf("message: got %q, want it to say the link leaves the folder", err)
			}
			if _, err := LocalDigest(root); err == nil {
				t.Error("LocalDigest: got nil error, want the same refusal")
			}
		})
	}
}

// TestManifestMustBeCanonical: a file blob that looks like a manifest is
// not an artifact unless it is exactly what Ingest writes and safe.
func TestManifestMustBeCanonical(t *testing.T) {
	f := newFixture(t, Limits{})
	evil := `{"version":1,"entries":[{"path":"../evil","type":"file","mode":420,"size":1,"digest":"sha256:` +
		strings.Repeat("0", 64) + `"}]}`
	tests := []struct {
		name, body string
	}{
		{"unsafe path", evil},
		{"not canonical", `{"version":1, "entries":[]}`},
		{"missing folders", `{"version":1,"entries":[{"path":"a/b","type":"dir","mode":493}]}`},
		{"unsorted", `{"version":1,"entries":[{"path":"b","type":"dir","mode":493},{"path":"a","type":"dir","mode":493}]}`},
		{"bad mode", `{"version":1,"entries":[{"path":"a","type":"dir","mode":511}]}`},
		{"unknown field", `{"version":1,"entries":[],"x":1}`},
		{"not JSON", `hello`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := f.blobs.PutBytes(bg, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if f.reg.Has(bg, d) {
				t.Error("Has: got true, want false")
			}
			if _, err := f.reg.Materialize(bg, d); !errors.Is(err, ErrArtifactNotFound) {
				t.Errorf("Materialize: got %v, want ErrArtifactNotFound", err)
			}
		})
	}
}
