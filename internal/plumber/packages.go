package plumber

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNoR means no R installation was found: the Rscript executable is not on
// PATH (or not at the configured path).
var ErrNoR = errors.New("R is not installed (Rscript not found)")

// basePackages ship with R itself: they are never missing.
var basePackages = map[string]bool{
	"base": true, "compiler": true, "datasets": true, "graphics": true, "grDevices": true,
	"grid": true, "methods": true, "parallel": true, "splines": true, "stats": true,
	"stats4": true, "tcltk": true, "tools": true, "utils": true,
}

// IsBasePackage reports whether name ships with R itself (base, stats,
// utils, methods, graphics, grDevices, datasets, tools, parallel, grid,
// splines, stats4, tcltk, compiler).
func IsBasePackage(name string) bool { return basePackages[name] }

// Markers frame MissingPackages' answer so that anything a site profile
// prints cannot be mistaken for it.
const (
	missingMarker = "plumbline-missing:"
	doneMarker    = "plumbline-done"
)

// MissingPackages asks the R installation behind rscript ("" means "Rscript"
// on PATH) which of pkgs it cannot load, in one Rscript call that runs
// requireNamespace(p, quietly = TRUE) for each. Base packages are never
// missing and are not asked about. A name that fails only because of its
// case (Debian's r-cran-rcpp installs Rcpp) is found through a
// case-insensitive match against the installed packages. The result is
// sorted. When rscript cannot be found the error wraps ErrNoR (R is not
// looked for when only base packages are asked about).
func MissingPackages(ctx context.Context, rscript string, pkgs []string) ([]string, error) {
	if rscript == "" {
		rscript = "Rscript"
	}
	set := map[string]bool{}
	for _, p := range pkgs {
		if !ValidPackageName(p) {
			return nil, fmt.Errorf("check R packages: %q is not a valid R package name", p)
		}
		if !IsBasePackage(p) {
			set[p] = true
		}
	}
	ask := make([]string, 0, len(set))
	for p := range set {
		ask = append(ask, p)
	}
	sort.Strings(ask)
	if len(ask) == 0 {
		return nil, nil
	}
	path, err := exec.LookPath(rscript)
	if err != nil {
		return nil, fmt.Errorf("check R packages: %w: %w", ErrNoR, err)
	}

	quoted := make([]string, len(ask))
	for i, p := range ask {
		quoted[i] = rString(p)
	}
	code := strings.Join([]string{
		`avail <- NULL`,
		`for (p in c(` + strings.Join(quoted, ", ") + `)) {`,
		`  ok <- suppressWarnings(suppressMessages(requireNamespace(p, quietly = TRUE)))`,
		`  if (!ok) {`,
		`    if (is.null(avail)) avail <- .packages(all.available = TRUE)`,
		`    alt <- avail[tolower(avail) == tolower(p)]`,
		`    ok <- length(alt) > 0 && suppressWarnings(suppressMessages(requireNamespace(alt[1], quietly = TRUE)))`,
		`  }`,
		`  if (!ok) cat('` + missingMarker + `', p, '\n', sep = '')`,
		`}`,
		`cat('` + doneMarker + `\n')`,
	}, "\n")
	cmd := exec.CommandContext(ctx, path, "-e", code)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("check R packages with %s: %w: %s", path, err, lastLines(stderr.String(), 5))
	}
	var missing []string
	done := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		if p, ok := strings.CutPrefix(line, missingMarker); ok {
			missing = append(missing, p)
		}
		done = done || line == doneMarker
	}
	if !done {
		return nil, fmt.Errorf("check R packages with %s: no answer from R: %s", path, lastLines(stderr.String(), 5))
	}
	return missing, nil
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// InstallHint returns the commands that install the missing packages, one
// per line: apt-get for those the Debian archive this machine's apt knows
// packages as r-cran-<lower-cased name> (asked with apt-cache, never
// guessed), install.packages in R for the others (and, for Debian's, as
// the alternative on other systems), and the container route that gives a
// deployment its own R packages. It returns "" when nothing is missing.
func InstallHint(missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	debs := make([]string, len(missing))
	for i, p := range missing {
		debs[i] = "r-cran-" + strings.ToLower(p)
	}
	known, haveApt := DebianPackages(context.Background(), debs)
	var apt, other []string
	for i, p := range missing {
		if known[debs[i]] {
			apt = append(apt, debs[i])
		} else {
			other = append(other, p)
		}
	}
	var lines []string
	switch {
	case len(apt) > 0 && len(other) == 0:
		lines = append(lines, "apt-get install -y "+strings.Join(apt, " "), "or, in R: "+installPackages(missing))
	case len(apt) > 0:
		lines = append(lines, "apt-get install -y "+strings.Join(apt, " "), "and, in R (not packaged for Debian): "+installPackages(other))
	case haveApt:
		lines = append(lines, "in R (not packaged for Debian): "+installPackages(other))
	default:
		lines = append(lines, "in R: "+installPackages(other))
	}
	lines = append(lines, "or run the deployment in a container that has them: plumbline serve --driver docker builds its environment's Dockerfile")
	return strings.Join(lines, "\n")
}

func installPackages(pkgs []string) string {
	quoted := make([]string, len(pkgs))
	for i, p := range pkgs {
		quoted[i] = `"` + p + `"`
	}
	if len(quoted) == 1 {
		return "install.packages(" + quoted[0] + ")"
	}
	return "install.packages(c(" + strings.Join(quoted, ", ") + "))"
}

// aptAnswers caches what apt-cache said about a package, for aptCacheTTL.
var aptAnswers sync.Map // package name → aptAnswer

type aptAnswer struct {
	exists bool
	at     time.Time
}

const aptCacheTTL = 10 * time.Minute

// DebianPackages asks apt-cache which of names the package archive known to
// this machine's apt has (installed, or installable after apt-get update
// was run). haveApt is false when apt-cache is not installed or knows no
// archive (no package lists): nothing can be said then.
func DebianPackages(ctx context.Context, names []string) (exists map[string]bool, haveApt bool) {
	exists = map[string]bool{}
	path, err := exec.LookPath("apt-cache")
	if err != nil || !aptHasLists() {
		return exists, false
	}
	var ask []string
	for _, n := range names {
		if v, ok := aptAnswers.Load(n); ok && time.Since(v.(aptAnswer).at) < aptCacheTTL {
			exists[n] = v.(aptAnswer).exists
			continue
		}
		ask = append(ask, n)
	}
	if len(ask) == 0 {
		return exists, true
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// apt-cache show exits 100 when any name is unknown, after printing
	// the records of the others.
	cmd := exec.CommandContext(ctx, path, append([]string{"show", "--no-all-versions", "-q"}, ask...)...)
	out, err := cmd.Output()
	if ctx.Err() != nil || (err != nil && len(out) == 0 && !isExit(err, 100)) {
		return exists, false
	}
	found := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(line, "Package: "); ok {
			found[strings.TrimSpace(p)] = true
		}
	}
	now := time.Now()
	for _, n := range ask {
		exists[n] = found[n]
		aptAnswers.Store(n, aptAnswer{exists: found[n], at: now})
	}
	return exists, true
}

// aptHasLists reports whether apt knows any package archive.
func aptHasLists() bool {
	m, _ := filepath.Glob("/var/lib/apt/lists/*_Packages*")
	return len(m) > 0
}

func isExit(err error, code int) bool {
	var e *exec.ExitError
	return errors.As(err, &e) && e.ExitCode() == code
}
