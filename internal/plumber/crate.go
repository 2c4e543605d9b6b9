package plumber

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed crate.R
var crateR string

// CrateFinding is one problem with a crate: a scoring function saved with
// saveRDS(serialize(fn, NULL), "crate.bin"), as carrier::crate() and the
// seed's article do.
type CrateFinding struct {
	// File is the crate's path.
	File string
	// Global: the function's environment is the global environment, so
	// nothing it uses was saved with it.
	Global bool
	// Missing are names the function uses that neither its environment nor
	// base R provides in a new R session.
	Missing []string
	// Unreadable is why R could not read the file back, if it could not.
	Unreadable string
}

// Warning says what is wrong with the crate and how to fix it.
func (f CrateFinding) Warning(name string) string {
	if f.Unreadable != "" {
		return fmt.Sprintf("%s cannot be read back by R (%s): save it with saveRDS(serialize(fn, NULL), %q)", name, f.Unreadable, filepath.Base(f.File))
	}
	var what string
	switch {
	case f.Global && len(f.Missing) > 0:
		what = fmt.Sprintf("%s holds a function defined in the global environment, so nothing it uses was saved with it: %s will not exist when it is called", name, strings.Join(f.Missing, ", "))
	case f.Global:
		what = fmt.Sprintf("%s holds a function defined in the global environment, so nothing it uses was saved with it", name)
	default:
		what = fmt.Sprintf("%s holds a function that uses %s, which it does not capture and base R does not provide", name, strings.Join(f.Missing, ", "))
	}
	obj := "model"
	if len(f.Missing) > 0 {
		obj = f.Missing[0]
	}
	return what + fmt.Sprintf(". Capture what it needs and save it again: with carrier, fn <- carrier::crate(function(newdata) predict(%[1]s, newdata), %[1]s = %[1]s); or in base R, fn <- local({ %[1]s <- %[1]s; function(newdata) predict(%[1]s, newdata) }); then saveRDS(serialize(fn, NULL), %[2]q). (If plumber.R attaches a package that provides these names, ignore this.)", obj, filepath.Base(f.File))
}

// Markers frame CheckCrates' answer.
const (
	crateMarker     = "plumbline-crate\t"
	crateDoneMarker = "plumbline-crate-done"
)

// CheckCrates reads each crate file with the R behind rscript ("" means
// Rscript on PATH), in one fresh session (--vanilla: nothing attached but
// base R), and returns what it found; files that hold something other than
// a function are skipped. sandbox, if set, is applied to the R process
// (reading a user's file can run code: an .rds can hold a promise). When
// rscript cannot be found the error wraps ErrNoR.
func CheckCrates(ctx context.Context, rscript string, files []string, sandbox func(*exec.Cmd)) ([]CrateFinding, error) {
	if len(files) == 0 {
		return nil, nil
	}
	if rscript == "" {
		rscript = "Rscript"
	}
	path, err := exec.LookPath(rscript)
	if err != nil {
		return nil, fmt.Errorf("check crates: %w: %w", ErrNoR, err)
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"--vanilla", "-e", crateR}, files...)...)
	if sandbox != nil {
		sandbox(cmd)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("check crates with %s: %w: %s", path, err, lastLines(stderr.String(), 5))
	}
	byFile := map[string]*CrateFinding{}
	var order []string
	done := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		done = done || line == crateDoneMarker
		rest, ok := strings.CutPrefix(line, crateMarker)
		if !ok {
			continue
		}
		parts := strings.SplitN(rest, "\t", 3)
		if len(parts) != 3 {
			continue
		}
		f := byFile[parts[0]]
		if f == nil {
			f = &CrateFinding{File: parts[0]}
			byFile[parts[0]] = f
			order = append(order, parts[0])
		}
		switch parts[1] {
		case "global":
			f.Global = true
		case "missing":
			f.Missing = strings.Split(parts[2], ",")
		case "unreadable":
			f.Unreadable = parts[2]
		}
	}
	if !done {
		return nil, fmt.Errorf("check crates with %s: no answer from R: %s", path, lastLines(stderr.String(), 5))
	}
	out := make([]CrateFinding, 0, len(order))
	for _, p := range order {
		out = append(out, *byFile[p])
	}
	return out, nil
}
