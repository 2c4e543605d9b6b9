package browser

import (
	"flag"
	"fmt"
	"github.com/plumbline/plumbline/test/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// chromiumPath is Debian's Chromium (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

var (
	// binPath is the plumbline binary under test.
	binPath string
	// repoRoot is the module root (two levels up from this package).
	repoRoot string
	// skipAll, when set, is why every test in the package skips.
	skipAll string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	repoRoot = root
	if skipAll = whySkip(); skipAll != "" {
		return m.Run()
	}
	bin, cleanup, err := testenv.Binary(repoRoot, "plumbline-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	defer cleanup()
	binPath = bin
	return m.Run()
}

// whySkip says why the browser test cannot run here, or "" when it can.
func whySkip() string {
	if testing.Short() {
		return "the browser test starts Chromium, R and plumbline serve; it does not run with -short"
	}
	if runtime.GOOS != "linux" {
		return "the browser test runs the R example with the process driver and Debian's Chromium; it needs Linux"
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		return fmt.Sprintf("no Chromium at %s (%v); install it with: bash scripts/install-test-deps.sh", chromiumPath, err)
	}
	if _, err := exec.LookPath("Rscript"); err != nil {
		return "no Rscript on PATH; install R and the example's packages with: bash scripts/install-deps.sh"
	}
	// The iris example trains with randomForest and serves with plumber.
	check := `for (p in c("plumber", "jsonlite", "randomForest")) if (!requireNamespace(p, quietly = TRUE)) cat(p, "")`
	out, err := exec.Command("Rscript", "-e", check).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("Rscript failed (%v): %s", err, strings.TrimSpace(string(out)))
	}
	if missing := strings.TrimSpace(string(out)); missing != "" {
		return "R packages missing: " + missing + "; install them with: bash scripts/install-deps.sh"
	}
	return ""
}

// requireRunnable skips t when the package cannot run (see skipAll); with
// PLUMBLINE_CI=1 (set by .ci/run, which installs everything) it fails
// instead, unless the run is -short.
func requireRunnable(t testing.TB) {
	t.Helper()
	if skipAll != "" && !testing.Short() && os.Getenv("PLUMBLINE_CI") == "1" {
		t.Fatal("PLUMBLINE_CI=1 and the browser test would be skipped: " + skipAll)
	}
	if skipAll != "" {
		t.Skip(skipAll)
	}
}
