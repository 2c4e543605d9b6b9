package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCanReach: a user that owns nothing on the way reaches a path only
// through folders others (or its group) may search.
func TestCanReach(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o711)
	os.Chmod(filepath.Dir(base), 0o711) // t.TempDir's own folder
	open := filepath.Join(base, "open")
	closed := filepath.Join(base, "closed")
	for _, d := range []string{filepath.Join(open, "tree"), filepath.Join(closed, "tree")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "plumber.R"), []byte("1"), 0o444)
	}
	os.Chmod(open, 0o711)
	os.Chmod(closed, 0o700)
	ru := &RunAs{Name: "someone", UID: 54321, GID: 54321}
	tests := []struct {
		name    string
		path    string
		enter   bool
		wantErr string
	}{
		{"through a folder others may search", filepath.Join(open, "tree", "plumber.R"), false, ""},
		{"a readable folder", filepath.Join(open, "tree"), false, ""},
		{"enter a search-only folder", open, true, ""},
		{"read a search-only folder", open, false, "cannot read " + open},
		{"through a private folder", filepath.Join(closed, "tree", "plumber.R"), false, "cannot enter " + closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.enter {
				err = ru.CanEnter(tt.path)
			} else {
				err = ru.CanReach(tt.path)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestFindExecutableForRunAs: a command found first in a folder the
// instances' user cannot reach (python3 under /root/.pyenv) is looked up
// further along PATH; when no copy is reachable the error says where it is.
func TestFindExecutableForRunAs(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o711)
	os.Chmod(filepath.Dir(base), 0o711) // t.TempDir's own folder
	private := filepath.Join(base, "private", "bin")
	public := filepath.Join(base, "public")
	os.MkdirAll(private, 0o755)
	os.MkdirAll(public, 0o755)
	os.Chmod(filepath.Join(base, "private"), 0o700)
	for _, d := range []string{private, public} {
		os.WriteFile(filepath.Join(d, "tool"), []byte("#!/bin/sh\n"), 0o755)
	}
	os.WriteFile(filepath.Join(private, "only-private"), []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("PATH", private+string(os.PathListSeparator)+public)
	d := &Driver{cfg: Config{RunAs: &RunAs{Name: "someone", UID: 54321, GID: 54321}}}
	got, err := d.findExecutable("tool", "")
	if err != nil || got != filepath.Join(public, "tool") {
		t.Errorf("tool: got %q %v, want %s", got, err, filepath.Join(public, "tool"))
	}
	_, err = d.findExecutable("only-private", "")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(private, "only-private")) || !strings.Contains(err.Error(), "cannot run") {
		t.Errorf("only-private: got %v, want an error naming where it is", err)
	}
	// Without a user to run as, PATH order decides.
	d = &Driver{}
	if got, err := d.findExecutable("tool", ""); err != nil || got != filepath.Join(private, "tool") {
		t.Errorf("no RunAs: got %q %v", got, err)
	}
}
