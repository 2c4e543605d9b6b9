package plumber

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
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

// InstallHint returns the commands that install the missing packages: the
// Debian/Ubuntu one (r-cran-<lower-cased name>, how Debian names CRAN
// packages) and, for other systems, the install.packages call to run in R.
// It returns "" when nothing is missing.
func InstallHint(missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	debs := make([]string, len(missing))
	quoted := make([]string, len(missing))
	for i, p := range missing {
		debs[i] = "r-cran-" + strings.ToLower(p)
		quoted[i] = `"` + p + `"`
	}
	return "apt-get install -y " + strings.Join(debs, " ") +
		"\nor, in R: install.packages(c(" + strings.Join(quoted, ", ") + "))"
}
