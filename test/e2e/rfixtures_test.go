package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// rPackages are the R packages some test needs; which are missing is
// found once (one short R run).
var rPackages = []string{"plumber", "jsonlite", "randomForest", "httr2"}

var rCheck struct {
	once    sync.Once
	rscript string
	missing map[string]bool
	err     string
}

// requireR skips t unless Rscript and every package in pkgs are installed.
func requireR(t *testing.T, pkgs ...string) {
	t.Helper()
	requireBinary(t)
	rCheck.once.Do(func() {
		p, err := exec.LookPath("Rscript")
		if err != nil {
			rCheck.err = "Rscript is not on PATH (install R, e.g. apt-get install r-base-core)"
			return
		}
		rCheck.rscript = p
		// system.file(package = x) is "" when x is not installed.
		expr := `p <- c(` + quoteR(rPackages) + `); cat(p[!nzchar(vapply(p, function(x) system.file(package = x), ""))], sep = "\n")`
		out, err := exec.Command(p, "-e", expr).Output()
		if err != nil {
			rCheck.err = "Rscript does not run: " + err.Error()
			return
		}
		rCheck.missing = map[string]bool{}
		for _, m := range strings.Fields(string(out)) {
			rCheck.missing[m] = true
		}
	})
	if rCheck.err != "" {
		skip(t, "needs R: "+rCheck.err)
	}
	var missing []string
	for _, p := range pkgs {
		if rCheck.missing[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		skip(t, fmt.Sprintf("needs the R package(s) %s (Debian: apt-get install %s)", strings.Join(missing, ", "), debNames(missing)))
	}
}

func quoteR(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, ", ")
}

func debNames(pkgs []string) string {
	d := make([]string, len(pkgs))
	for i, p := range pkgs {
		d[i] = "r-cran-" + strings.ToLower(p)
	}
	return strings.Join(d, " ")
}

// The seed's folder, trained once per package run.
var iris struct {
	once     sync.Once
	dir      string // a trained copy of examples/r-iris
	trainOut string // what train.R printed
	err      string
	skip     string
}

// irisFolder returns a private copy of examples/r-iris whose
// models/crate.bin was made by running the example's own train.R (once per
// package run: the committed crate.bin is removed first, so the file the
// tests deploy is train.R's).
func irisFolder(t *testing.T) string {
	t.Helper()
	requireR(t, "plumber", "jsonlite", "randomForest")
	iris.once.Do(func() {
		src := filepath.Join(repoRoot, "examples", "r-iris")
		if _, err := os.Stat(filepath.Join(src, "train.R")); err != nil {
			iris.skip = "examples/r-iris/train.R is not there yet: " + err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "plumbline-e2e-iris-")
		if err != nil {
			iris.err = err.Error()
			return
		}
		iris.dir = dir
		if err := copyDir(src, dir); err != nil {
			iris.err = err.Error()
			return
		}
		os.Remove(filepath.Join(dir, "models", "crate.bin"))
		cmd := exec.Command(rCheck.rscript, "train.R")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		iris.trainOut = string(out)
		if err != nil {
			iris.err = "Rscript train.R: " + err.Error() + "\n" + string(out)
			return
		}
		if fi, err := os.Stat(filepath.Join(dir, "models", "crate.bin")); err != nil || fi.Size() == 0 {
			iris.err = "Rscript train.R did not write models/crate.bin:\n" + string(out)
		}
	})
	if iris.skip != "" {
		skip(t, iris.skip)
	}
	if iris.err != "" {
		t.Fatal(iris.err)
	}
	dst := t.TempDir()
	copyTree(t, iris.dir, dst)
	return dst
}

// removeSharedFixtures deletes what irisFolder made; TestMain calls it.
func removeSharedFixtures() {
	if iris.dir != "" {
		os.RemoveAll(iris.dir)
	}
	if noCodeModels.dir != "" {
		os.RemoveAll(noCodeModels.dir)
	}
}

// sampleRequest is the seed's request body.
func sampleRequest(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sample_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
