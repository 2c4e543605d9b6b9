package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
