package e2e

import (
	"flag"
	"fmt"
	"github.com/plumbline/plumbline/test/testenv"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

var (
	// binPath is the plumbline binary under test.
	binPath string
	// repoRoot is the module root (two levels up from this package).
	repoRoot string
	// skipAll, when set, is why every test in the package skips.
	skipAll string
)

func TestMain(m *testing.M) {
	if os.Getenv(envClassifier) == "1" {
		os.Exit(classifier())
	}
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	if testing.Short() {
		skipAll = "end-to-end tests start processes and R; they do not run with -short"
		return m.Run()
	}
	if runtime.GOOS != "linux" {
		skipAll = "end-to-end tests read /proc and run the process driver; they need Linux"
		return m.Run()
	}
	bin, cleanup, err := testenv.Binary(repoRoot, "plumbline-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cleanup()
	binPath = bin
	defer removeSharedFixtures()
	defer removeSelfCopy()
	return m.Run()
}

// requireBinary skips t when the package cannot run (see skipAll).
func requireBinary(t testing.TB) {
	t.Helper()
	if skipAll != "" {
		if testing.Short() {
			t.Skip(skipAll)
		}
		skip(t, skipAll)
	}
}

// skip skips t, or fails it when PLUMBLINE_CI=1: CI installs everything
// the tests need (.ci/run), so a missing piece there is a failure, never a
// silent skip.
func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("PLUMBLINE_CI") == "1" {
		t.Fatal("PLUMBLINE_CI=1 and a test would be skipped: " + why)
	}
	t.Skip(why)
}
