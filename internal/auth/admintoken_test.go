package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "plumbline")
	path := filepath.Join(dir, "admin-token")

	tok, err := LoadOrCreateAdminToken(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(tok) != 43 {
		t.Errorf("token %q: got %d characters, want 43", tok, len(tok))
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %04o, want %04o", p, got, want)
		}
	}
	again, err := LoadOrCreateAdminToken(path)
	if err != nil || again != tok {
		t.Errorf("second call: got %q, %v, want %q", again, err, tok)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateAdminToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable file: got %v, want an error telling to chmod 600", err)
	}

	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateAdminToken(empty); err == nil {
		t.Error("empty file: got nil error, want one")
	}
}
