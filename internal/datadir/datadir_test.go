package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "plumbline")
	d, err := Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d.Root); fi.Mode().Perm() != 0o700 {
		t.Errorf("new data dir mode %04o, want 0700", fi.Mode().Perm())
	}
	open := filepath.Join(base, "shared")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	os.WriteFile(filepath.Join(open, "notes.txt"), []byte("x"), 0o644)
	_, err = Open(open)
	if err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("a folder others can read, holding other files: got %v, want a refusal", err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o755 {
		t.Errorf("Open changed an existing folder's mode to %04o", fi.Mode().Perm())
	}
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	os.Chmod(empty, 0o755)
	if _, err := Open(empty); err != nil {
		t.Fatalf("an empty folder: %v", err)
	}
	if fi, _ := os.Stat(empty); fi.Mode().Perm() != 0o700 {
		t.Errorf("an empty folder became %04o, want 0700", fi.Mode().Perm())
	}
	if err := WriteFilePrivate(filepath.Join(d.Root, "f"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(d.Root, "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("WriteFilePrivate mode %04o, want 0600", fi.Mode().Perm())
	}
}
