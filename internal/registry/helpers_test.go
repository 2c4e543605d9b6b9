package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

var bg = context.Background()

type fixture struct {
	reg   *Registry
	blobs *blob.FS
	st    store.Store
	dir   string
}

func newFixture(t testing.TB, lim Limits) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(bg, filepath.Join(dir, "plumbline.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	t.Cleanup(func() {
		st.Close()
		removeTree(cache) // read-only folders: t.TempDir cannot remove them alone
	})
	return &fixture{reg: New(st, blobs, cache, lim), blobs: blobs, st: st, dir: dir}
}

// entry is one entry of a hand-made tar.
type entry struct {
	name     string
	typ      byte
	body     string
	size     int64 // when body is empty and size > 0: that many zero bytes
	mode     int64
	linkname string
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}

func dir(name string) entry {
	return entry{name: name, typ: tar.TypeDir, mode: 0o755}
}

func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, linkname: target, mode: 0o777}
}

func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, linkname: target, mode: 0o644}
}

// makeTar builds a tar (gzipped when gz) from entries, as a foreign tool
// would: arbitrary times and owners.
func makeTar(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for i, e := range entries {
		size := int64(len(e.body))
		if e.body == "" && e.size > 0 {
			size = e.size
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.linkname, Uid: 1000 + i,
			Uname: "someone", ModTime: fakeTime(i)}
		if e.typ == tar.TypeReg {
			h.Size = size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if e.body != "" {
				tw.Write([]byte(e.body))
			} else if size > 0 {
				zeros := make([]byte, 1<<20)
				for left := size; left > 0; {
					n := min(left, int64(len(zeros)))
					tw.Write(zeros[:n])
					left -= n
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

// writeFolder creates the test model folder under parent and returns it:
// nested folders, an executable, an empty file, an empty folder, symlinks
// inside.
func writeFolder(t testing.TB, parent string) string {
	t.Helper()
	root := filepath.Join(parent, "models")
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(rnd.UintN(256))
	}
	files := []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{"crate.bin", big, 0o644},
		{"empty.txt", nil, 0o644},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"sub/deeper/data.csv", []byte("a,b\n1,2\n"), 0o640},
		{"sub/ünïcode name.txt", []byte("hello"), 0o600},
	}
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, f.mode)
	}
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link.bin":      "crate.bin",
		"sub/up.bin":    "../crate.bin",
		"dirlink":       "sub/deeper",
		"sub/deeper/up": "../..",
	} {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// snapshot describes a local tree for comparison: type, exec bit, sha256 of
// files, link targets.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink -> " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, _ := d.Info()
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file exec=%v %s", info.Mode()&0o100 != 0, hex.EncodeToString(sum[:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listOutside returns what exists under parent besides the names in keep.
func listOutside(t testing.TB, parent string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.Contains(" "+strings.Join(keep, " ")+" ", " "+e.Name()+" ") {
			out = append(out, e.Name())
		}
	}
	return out
}

func fakeTime(i int) time.Time { return epoch.AddDate(30, 0, i) }
