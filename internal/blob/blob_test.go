package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newFS(t *testing.T) *FS {
	t.Helper()
	f, err := New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPutOpenStat(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello\n")},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 70_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum := sha256.Sum256(tt.data)
			want := "sha256:" + hex.EncodeToString(sum[:])
			d, n, err := f.Put(ctx, bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if d != want || n != int64(len(tt.data)) {
				t.Fatalf("Put: got %s %d, want %s %d", d, n, want, len(tt.data))
			}
			// Idempotent.
			d2, _, err := f.Put(ctx, bytes.NewReader(tt.data))
			if err != nil || d2 != d {
				t.Fatalf("second Put: got %s %v, want %s", d2, err, d)
			}
			if !f.Has(d) {
				t.Errorf("Has(%s): got false, want true", d)
			}
			size, err := f.Stat(d)
			if err != nil || size != int64(len(tt.data)) {
				t.Errorf("Stat: got %d %v, want %d", size, err, len(tt.data))
			}
			rc, err := f.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("Open: got %d bytes (%v), want %d", len(got), err, len(tt.data))
			}
			p := f.Path(d)
			if want := filepath.Join(f.Dir(), "sha256", d[7:9], d[7:]); p != want {
				t.Errorf("Path: got %s, want %s", p, want)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("blob mode: got %v, want 0444", fi.Mode().Perm())
			}
			di, err := os.Stat(filepath.Dir(p))
			if err != nil || di.Mode().Perm() != 0o700 {
				t.Errorf("blob folder mode: got %v (%v), want 0700", di.Mode().Perm(), err)
			}
		})
	}
	entries, err := os.ReadDir(f.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".put-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestNewMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "blobs")
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mode: got %v, want 0700", fi.Mode().Perm())
	}
}

func TestInvalidDigest(t *testing.T) {
	f := newFS(t)
	tests := []struct {
		name   string
		digest string
	}{
		{"empty", ""},
		{"no prefix", strings.Repeat("a", 64)},
		{"uppercase", "sha256:" + strings.Repeat("A", 64)},
		{"short", "sha256:abc"},
		{"long", "sha256:" + strings.Repeat("a", 65)},
		{"traversal", "sha256:../../../../etc/passwd" + strings.Repeat("a", 36)},
		{"slash", "sha256:" + strings.Repeat("a", 31) + "/" + strings.Repeat("a", 32)},
		{"other algorithm", "sha512:" + strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ValidDigest(tt.digest) {
				t.Errorf("ValidDigest(%q): got true, want false", tt.digest)
			}
			if p := f.Path(tt.digest); p != "" {
				t.Errorf("Path: got %q, want empty", p)
			}
			if _, err := f.Open(tt.digest); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("Open: got %v, want ErrInvalidDigest", err)
			}
			if _, err := f.Stat(tt.digest); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("Stat: got %v, want ErrInvalidDigest", err)
			}
			if f.Has(tt.digest) {
				t.Errorf("Has: got true, want false")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	f := newFS(t)
	d := Digest([]byte("never stored"))
	if _, err := f.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open: got %v, want ErrNotFound", err)
	}
	if _, err := f.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat: got %v, want ErrNotFound", err)
	}
}

func TestPutCanceled(t *testing.T) {
	f := newFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Put(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(f.Dir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".put-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestConcurrentPut(t *testing.T) {
	f := newFS(t)
	data := bytes.Repeat([]byte("z"), 100_000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, _, err := f.Put(context.Background(), bytes.NewReader(data))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if size, err := f.Stat(Digest(data)); err != nil || size != int64(len(data)) {
		t.Errorf("Stat: got %d %v, want %d", size, err, len(data))
	}
}

// corruptInPlace overwrites the blob's bytes through its own inode, keeping
// its size, as a failing tool or a careless user would.
func corruptInPlace(t *testing.T, p string) {
	t.Helper()
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	file, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	file.Close()
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
}

func TestSameSizeCorruption(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()
	data := []byte("the model's bytes, 40 of them.........\n")
	d, _, err := f.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctx, d); err != nil {
		t.Fatalf("Check of a fresh blob: %v", err)
	}
	corruptInPlace(t, f.Path(d))

	var ce *CorruptError
	if err := f.Check(ctx, d); !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check after a same-size overwrite: got %v, want a *CorruptError", err)
	}
	if ce.Digest != d || ce.Path != f.Path(d) || ce.Got == d {
		t.Errorf("CorruptError: got %+v", ce)
	}
	if err := f.Verify(ctx, d); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify: got %v, want ErrCorrupt", err)
	}

	// Storing the right bytes again repairs the blob instead of keeping the
	// corrupt file because it has the expected size.
	if _, _, err := f.Put(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Path(d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after Put of the right bytes: got %q (%v), want %q", got, err, data)
	}
	if err := f.Check(ctx, d); err != nil {
		t.Errorf("Check after repair: %v", err)
	}
	if fi, _ := os.Stat(f.Path(d)); fi.Mode().Perm() != 0o444 {
		t.Errorf("repaired blob mode %v, want 0444", fi.Mode().Perm())
	}
}

// TestCheckNoticesRestoredMtime: a write that puts the modification time
// back (touch -d) still changes the inode change time, so the cached
// verification is not trusted.
func TestCheckNoticesRestoredMtime(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()
	d, err := f.PutBytes(ctx, []byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	p := f.Path(d)
	fi, _ := os.Stat(p)
	if err := f.Check(ctx, d); err != nil {
		t.Fatal(err)
	}
	corruptInPlace(t, p)
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctx, d); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check: got %v, want ErrCorrupt", err)
	}
}

func TestCheckMissing(t *testing.T) {
	f := newFS(t)
	if err := f.Check(context.Background(), Digest([]byte("x"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
}

func TestRemovePartialAndWalk(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()
	d, err := f.PutBytes(ctx, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	// What a kill -9 during an upload leaves behind.
	partial := filepath.Join(f.Dir(), ".put-123456")
	if err := os.WriteFile(partial, bytes.Repeat([]byte("p"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(f.Dir(), "sha256", "zz", "not-a-digest")
	os.MkdirAll(filepath.Dir(stray), 0o700)
	if err := os.WriteFile(stray, []byte("?"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, size, err := f.RemovePartial()
	if err != nil || n != 1 || size != 1000 {
		t.Errorf("RemovePartial: got %d files, %d bytes, %v; want 1, 1000, nil", n, size, err)
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial upload still there: %v", err)
	}
	var blobs, strays []string
	if err := f.Walk(ctx, func(in Info) error {
		if in.Digest != "" {
			blobs = append(blobs, in.Digest)
		} else {
			strays = append(strays, in.Path)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 1 || blobs[0] != d {
		t.Errorf("Walk blobs: got %v, want [%s]", blobs, d)
	}
	if len(strays) != 1 || strays[0] != stray {
		t.Errorf("Walk strays: got %v, want [%s]", strays, stray)
	}
	if err := f.Remove(d); err != nil {
		t.Fatal(err)
	}
	if f.Has(d) {
		t.Error("Has after Remove: got true")
	}
	if err := f.Remove(d); err != nil {
		t.Errorf("Remove of a missing blob: %v", err)
	}
}

// TestPutRefreshesTime: storing bytes that exist already makes the blob
// look freshly used, so a collection with a minimum age does not take a
// blob a client is about to reference.
func TestPutRefreshesTime(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()
	d, err := f.PutBytes(ctx, []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(f.Path(d), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PutBytes(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.Path(d))
	if time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("mtime after a second Put: %v, want about now", fi.ModTime())
	}
}

func TestNoSpace(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"ENOSPC", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true},
		{"EDQUOT", fmt.Errorf("sync: %w", syscall.EDQUOT), true},
		{"EIO", &os.PathError{Op: "write", Path: "/x", Err: syscall.EIO}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NoSpace(tt.err)
			if got := errors.Is(err, ErrNoSpace); got != tt.want {
				t.Errorf("errors.Is(NoSpace(%v), ErrNoSpace): got %v, want %v", tt.err, got, tt.want)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("NoSpace(%v) lost the cause: %v", tt.err, err)
			}
		})
	}
}
