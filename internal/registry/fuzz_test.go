package registry

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/internal/blob"
)

// FuzzIngest: arbitrary bytes never panic Ingest or ExtractTar, never make
// either write outside its folder, and what Ingest accepts comes back from
// WriteTar as a tar that ingests to the same digest.
func FuzzIngest(f *testing.F) {
	f.Add(makeTar(f, false, dir("m"), file("m/a", "hello"), symlink("m/l", "a"), hardlink("m/h", "m/a")))
	f.Add(makeTar(f, true, file("crate.bin", "crate"), entry{name: "run", typ: tar.TypeReg, body: "#!", mode: 0o755}))
	for _, h := range hostile(f) {
		if h.name != "gzip bomb" { // 32 MiB inflated: too slow per exec
			f.Add(h.tar)
		}
	}
	f.Add(makeTar(f, true, entry{name: "bomb", typ: tar.TypeReg, size: 2 << 20, mode: 0o644}))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	lim := Limits{MaxBytes: 1 << 20, MaxFiles: 64}
	// One blob store for all inputs (it is content-addressed): cheaper.
	store := f.TempDir()
	blobs, err := blob.New(filepath.Join(store, "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	reg := New(nil, blobs, filepath.Join(store, "cache"), lim)

	f.Fuzz(func(t *testing.T, data []byte) {
		art, ingestErr := reg.Ingest(bg, bytes.NewReader(data), lim)
		if got := listOutside(t, store, "blobs"); len(got) != 0 {
			t.Fatalf("Ingest wrote outside the blob store: %v", got)
		}
		base := t.TempDir()
		out := filepath.Join(base, "out")
		extractErr := ExtractTar(bg, bytes.NewReader(data), out, lim)
		if got := listOutside(t, base, "out"); len(got) != 0 {
			t.Fatalf("ExtractTar wrote outside dst: %v", got)
		}
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			target, _ := os.Readlink(p)
			if filepath.IsAbs(target) {
				t.Errorf("absolute symlink extracted: %s -> %s", p, target)
			}
			rel, _ := filepath.Rel(out, filepath.Join(filepath.Dir(p), target))
			if rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("symlink leaving dst extracted: %s -> %s", p, target)
			}
			return nil
		})
		if ingestErr != nil {
			if extractErr == nil {
				t.Fatalf("Ingest refused (%v) what ExtractTar accepted", ingestErr)
			}
			return
		}
		var again bytes.Buffer
		if err := reg.WriteTar(bg, art.Digest, &again); err != nil {
			t.Fatalf("WriteTar of an ingested artifact: %v", err)
		}
		art2, err := reg.Ingest(bg, &again, lim)
		if err != nil {
			t.Fatalf("re-ingest of WriteTar's output: %v", err)
		}
		if art2 != art {
			t.Fatalf("re-ingest: got %+v, want %+v", art2, art)
		}
	})
}
