// Package testenv is what plumbline's process-level test suites (test/e2e,
// test/browser) share: the binary under test, a clean environment, private
// data directories, process output buffers and folder copies.
//
// It is test support only: nothing outside test/ imports it.
package testenv

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Binary returns the plumbline binary to test: $PLUMBLINE_BIN if set (the
// Makefile's `make test` sets it), else one built from the module at root
// into a temporary folder that cleanup removes.
func Binary(root, prefix string) (path string, cleanup func(), err error) {
	cleanup = func() {}
	if bin := os.Getenv("PLUMBLINE_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return "", cleanup, fmt.Errorf("PLUMBLINE_BIN=%s: %w", bin, err)
		}
		return abs, cleanup, nil
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	// A server running as root starts scoring processes as an unprivileged
	// user (plumbline-instance), which runs this same binary: the folder
	// must let it in (MkdirTemp makes it 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return "", func() {}, err
	}
	path = filepath.Join(dir, "plumbline")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", path, "./cmd/plumbline")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("go build ./cmd/plumbline: %w\n%s", err, out)
	}
	return path, cleanup, nil
}

// LogBuffer collects a process's output; safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns at most the last n bytes, starting at a line.
func (b *LogBuffer) Tail(n int) string {
	s := b.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// CleanEnv is this process's environment without PLUMBLINE_* variables, so
// that nothing from the developer's shell points the binary elsewhere, plus
// extra.
func CleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUMBLINE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// NewDataDir is an empty data directory removed after the test. The server
// keeps read-only trees in it (cache/); the cleanup makes them writable
// again so that removal works for users other than root.
//
// Its parent (the test's temporary folder) can be entered by everyone: a
// server running as root runs its instances as an unprivileged user, who
// must reach the data dir's cache.
func NewDataDir(t *testing.T) string {
	t.Helper()
	dd := t.TempDir()
	if err := os.Chmod(filepath.Dir(dd), 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(dd, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	return dd
}

// CopyDir copies the regular files and folders under src into dst.
func CopyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
