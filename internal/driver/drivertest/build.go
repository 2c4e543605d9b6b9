package drivertest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// BuildTestServer returns the path of the test server binary
// (testdata/testserver, see its doc), building it with `go build` on first
// use. The binary is cached under the system temp folder, keyed by its
// source and the Go version, so later test runs skip the build.
func BuildTestServer(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildBin, buildErr = buildTestServer() })
	if buildErr != nil {
		t.Fatalf("build the test server: %v", buildErr)
	}
	return buildBin
}

func buildTestServer() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate drivertest's source")
	}
	src := filepath.Join(filepath.Dir(self), "testdata", "testserver")
	code, err := os.ReadFile(filepath.Join(src, "main.go"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(code, runtime.Version()...))
	dir := filepath.Join(os.TempDir(), "plumbline-drivertest")
	bin := filepath.Join(dir, fmt.Sprintf("testserver-%x", sum[:8]))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.Command(gobin, "build", "-o", tmp, "main.go")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s build: %w\n%s", gobin, err, out)
	}
	// Rename is atomic: concurrent test binaries each build and the last
	// rename wins with an identical file.
	return bin, os.Rename(tmp, bin)
}
