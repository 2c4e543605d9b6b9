package registry

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/blob"
)

func ingestFolder(t *testing.T, f *fixture) (src string, art Artifact) {
	t.Helper()
	src = writeFolder(t, t.TempDir())
	var buf bytes.Buffer
	if err := WriteTar(bg, &buf, src, nil); err != nil {
		t.Fatal(err)
	}
	art, err := f.reg.Ingest(bg, &buf, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return src, art
}

func TestMaterialize(t *testing.T) {
	f := newFixture(t, Limits{})
	src, art := ingestFolder(t, f)

	const n = 6
	dirs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dirs[i], errs[i] = f.reg.Materialize(bg, art.Digest) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Errorf("call %d: got %s, want %s", i, dirs[i], dirs[0])
		}
	}
	dir := dirs[0]
	if want := filepath.Join(f.dir, "cache", strings.TrimPrefix(art.Digest, "sha256:")); dir != want {
		t.Errorf("dir: got %s, want %s", dir, want)
	}
	if diff := cmp.Diff(snapshot(t, src), snapshot(t, filepath.Join(dir, "models"))); diff != "" {
		t.Errorf("materialized tree (-want +got):\n%s", diff)
	}

	// Modes: folders 0555, files 0444, executables 0555.
	tests := []struct {
		name, path string
		want       fs.FileMode
	}{
		{"tree root", ".", 0o555},
		{"folder", "models", 0o555},
		{"nested folder", "models/sub/deeper", 0o555},
		{"empty folder", "models/emptydir", 0o555},
		{"file", "models/crate.bin", 0o444},
		{"empty file", "models/empty.txt", 0o444},
		{"file that was 0600", "models/sub/ünïcode name.txt", 0o444},
		{"executable", "models/run.sh", 0o555},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(tt.path)))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode: got %v, want %v", got, tt.want)
			}
		})
	}
	if fi, err := os.Lstat(filepath.Join(dir, "models", "link.bin")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("link.bin: got %v (%v), want a symlink", fi.Mode(), err)
	}

	// Plain files are hard links to their blobs; executables are copies.
	m, err := f.reg.Manifest(bg, art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries {
		if e.Type != TypeFile {
			continue
		}
		a, _ := os.Stat(f.blobs.Path(e.Digest))
		b, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if same := os.SameFile(a, b); same == e.Executable() {
			t.Errorf("%s: hard link to blob: got %v, want %v", e.Path, same, !e.Executable())
		}
	}
	// The executable's blob keeps its own mode.
	for _, e := range m.Entries {
		if e.Executable() {
			fi, _ := os.Stat(f.blobs.Path(e.Digest))
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("blob of %s: got mode %v, want 0444", e.Path, fi.Mode().Perm())
			}
		}
	}

	// No temporary folders left; a second call is the same folder.
	if got := listOutside(t, filepath.Join(f.dir, "cache"), filepath.Base(dir)); len(got) != 0 {
		t.Errorf("left in the cache: %v", got)
	}
	again, err := f.reg.Materialize(bg, art.Digest)
	if err != nil || again != dir {
		t.Errorf("again: got %s (%v), want %s", again, err, dir)
	}
	fi, err := os.Stat(filepath.Join(f.dir, "cache"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache folder: got %v (%v), want 0700", fi.Mode().Perm(), err)
	}

	// Evict removes it; Materialize rebuilds it.
	if err := f.reg.Evict(art.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Evict: got %v, want not exist", err)
	}
	if _, err := os.Stat(f.blobs.Path(m.Entries[1].Digest)); err != nil {
		t.Errorf("blob after Evict: %v", err)
	}
	if _, err := f.reg.Materialize(bg, art.Digest); err != nil {
		t.Fatal(err)
	}
}

func TestMaterializeErrors(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	tests := []struct {
		name   string
		digest string
		want   error
	}{
		{"invalid digest", "sha256:../../etc", blob.ErrInvalidDigest},
		{"unknown digest", blob.Digest([]byte("nothing")), ErrArtifactNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.reg.Materialize(bg, tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("missing file blob", func(t *testing.T) {
		m, err := f.reg.Manifest(bg, art.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var victim string
		for _, e := range m.Entries {
			if e.Path == "models/sub/deeper/data.csv" {
				victim = f.blobs.Path(e.Digest)
			}
		}
		if err := os.Remove(victim); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.Materialize(bg, art.Digest); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("got %v, want blob.ErrNotFound", err)
		}
		if got := listOutside(t, filepath.Join(f.dir, "cache")); len(got) != 0 {
			t.Errorf("left in the cache after a failure: %v", got)
		}
		if err := f.reg.WriteTar(bg, art.Digest, &bytes.Buffer{}); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("WriteTar: got %v, want blob.ErrNotFound", err)
		}
	})
}
