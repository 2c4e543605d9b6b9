package registry

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/internal/blob"
)

// flipBytes overwrites a file in place with bytes of the same size, through
// its own inode (so hard links to it see the change too).
func flipBytes(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5a
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func entryDigest(t *testing.T, f *fixture, art, path string) string {
	t.Helper()
	m, err := f.reg.Manifest(bg, art)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries {
		if e.Path == path {
			return e.Digest
		}
	}
	t.Fatalf("no entry %s", path)
	return ""
}

// TestCorruptBlobSameSize is defect 2: a blob overwritten with bytes of the
// same size. The registry must stop calling the artifact present (so a
// client uploads it again), the upload must repair it, a materialized tree
// hard-linked to it must be found bad and rebuilt, and a tree cannot be built
// from the bad blob.
func TestCorruptBlobSameSize(t *testing.T) {
	f := newFixture(t, Limits{})
	src, art := ingestFolder(t, f)
	dir, err := f.reg.Materialize(bg, art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	d := entryDigest(t, f, art.Digest, "models/crate.bin")
	flipBytes(t, f.blobs.Path(d))

	if f.reg.Has(bg, art.Digest) {
		t.Error("Has: got true for an artifact with a corrupt blob, want false (the client would skip the upload)")
	}
	err = f.reg.Check(bg, art.Digest)
	if !errors.Is(err, blob.ErrCorrupt) || !strings.Contains(err.Error(), "models/crate.bin") {
		t.Errorf("Check: got %v, want ErrCorrupt naming models/crate.bin", err)
	}

	// The cached tree is a hard link to the bad blob: Materialize must not
	// hand it out, and cannot rebuild it from the bad blob.
	_, err = f.reg.Materialize(bg, art.Digest)
	var ce *blob.CorruptError
	if !errors.As(err, &ce) || ce.Digest != d {
		t.Fatalf("Materialize with a corrupt blob: got %v, want a *blob.CorruptError for %s", err, d)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the damaged tree is still in the cache: %v", err)
	}
	if err := f.reg.WriteTar(bg, art.Digest, &bytes.Buffer{}); !errors.Is(err, blob.ErrCorrupt) {
		t.Errorf("WriteTar of a corrupt artifact: got %v, want ErrCorrupt", err)
	}

	// Uploading the right bytes again repairs the blob, and the tree comes back.
	var buf bytes.Buffer
	if err := WriteTar(bg, &buf, src, nil); err != nil {
		t.Fatal(err)
	}
	again, err := f.reg.Ingest(bg, &buf, Limits{})
	if err != nil || again.Digest != art.Digest {
		t.Fatalf("re-ingest: got %v %v", again, err)
	}
	if err := f.reg.Check(bg, art.Digest); err != nil {
		t.Fatalf("Check after the upload: %v", err)
	}
	dir, err = f.reg.Materialize(bg, art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := blob.HashFile(bg, filepath.Join(dir, "models", "crate.bin"))
	if err != nil || got != d {
		t.Errorf("rebuilt file hashes to %s (%v), want %s", got, err, d)
	}
}

// TestMaterializeEvictsDamagedTree: a cached tree that differs from its
// artifact (a changed copy, an extra file, a missing one) is evicted and
// rebuilt from the blobs, which are fine.
func TestMaterializeEvictsDamagedTree(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"executable copy changed", func(t *testing.T, dir string) {
			flipBytes(t, filepath.Join(dir, "models", "run.sh"))
		}},
		{"file added", func(t *testing.T, dir string) {
			sub := filepath.Join(dir, "models", "sub")
			os.Chmod(sub, 0o755)
			if err := os.WriteFile(filepath.Join(sub, "extra.R"), []byte("system('id')"), 0o444); err != nil {
				t.Fatal(err)
			}
			os.Chmod(sub, 0o555)
		}},
		{"file removed", func(t *testing.T, dir string) {
			deeper := filepath.Join(dir, "models", "sub", "deeper")
			os.Chmod(deeper, 0o755)
			if err := os.Remove(filepath.Join(deeper, "data.csv")); err != nil {
				t.Fatal(err)
			}
			os.Chmod(deeper, 0o555)
		}},
		{"file replaced by another inode", func(t *testing.T, dir string) {
			models := filepath.Join(dir, "models")
			os.Chmod(models, 0o755)
			p := filepath.Join(models, "empty.txt")
			os.Remove(p)
			if err := os.WriteFile(p, []byte("not empty"), 0o444); err != nil {
				t.Fatal(err)
			}
			os.Chmod(models, 0o555)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Limits{})
			src, art := ingestFolder(t, f)
			dir, err := f.reg.Materialize(bg, art.Digest)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			again, err := f.reg.Materialize(bg, art.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if !equalTrees(t, src, filepath.Join(again, "models")) {
				t.Error("the damaged tree was handed out instead of being rebuilt")
			}
		})
	}
}

func equalTrees(t *testing.T, a, b string) bool {
	t.Helper()
	sa, sb := snapshot(t, a), snapshot(t, b)
	if len(sa) != len(sb) {
		return false
	}
	for k, v := range sa {
		if sb[k] != v {
			return false
		}
	}
	return true
}

// TestCorruptManifest: a manifest blob whose bytes changed (here: still
// canonical JSON, pointing a file at other bytes) is refused.
func TestCorruptManifest(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	p := f.blobs.Path(art.Digest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Swap two hex digits of the first file digest: same size, valid JSON.
	i := bytes.Index(b, []byte(`"digest":"sha256:`)) + len(`"digest":"sha256:`)
	b[i], b[i+1] = b[i+1], b[i]
	if b[i] == b[i+1] {
		b[i] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", b[i])+1)%16]
	}
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Manifest(bg, art.Digest); !errors.Is(err, blob.ErrCorrupt) {
		t.Errorf("Manifest: got %v, want ErrCorrupt", err)
	}
	if f.reg.Has(bg, art.Digest) {
		t.Error("Has: got true, want false")
	}
}
