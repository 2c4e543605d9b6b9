package blob

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/plumbline/plumbline/internal/tmpfs"
)

// TestPutDiskFull: on a full disk Put fails with ErrNoSpace (and the
// system's ENOSPC), leaves no temporary file, and the store works again once
// there is room.
func TestPutDiskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 1<<20)
	f, err := New(dir + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, err = f.Put(ctx, bytes.NewReader(bytes.Repeat([]byte("x"), 2<<20)))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put of 2 MiB on a 1 MiB disk: got %v, want ErrNoSpace wrapping ENOSPC", err)
	}
	entries, _ := os.ReadDir(f.Dir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), partialPrefix) {
			t.Errorf("temporary file left on the full disk: %s", e.Name())
		}
	}
	d, _, err := f.Put(ctx, strings.NewReader("small"))
	if err != nil {
		t.Fatalf("Put after the failure: %v", err)
	}
	if err := f.Check(ctx, d); err != nil {
		t.Error(err)
	}
}
