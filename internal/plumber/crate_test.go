package plumber

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckCrates writes crates the ways R users do (and the ways they go
// wrong) with real R, and checks what CheckCrates finds.
func TestCheckCrates(t *testing.T) {
	rs := requirePlumber(t)
	dir := t.TempDir()
	code := `
save <- function(fn, name) saveRDS(serialize(fn, NULL), file.path(dir, name))
dir <- commandArgs(trailingOnly = TRUE)[1]
model <- stats::lm(mpg ~ wt, data = mtcars)
# The 106-byte crate: defined at top level, the model left behind.
save(function(newdata) predict(model, newdata), "global.bin")
# Captured with local(): fine.
save(local({ m <- model; function(newdata) stats::predict(m, newdata) }), "local.bin")
# A carrier-style crate (parent: the base environment) that forgot a name
# and calls predict without stats::.
env <- new.env(parent = baseenv()); env$m <- model
save(local(envir = env, function(newdata) { out <- predict(m, newdata); out * multiplier }), "forgot.bin")
# A fitted model, not a function: not a crate.
saveRDS(serialize(model, NULL), file.path(dir, "model.bin"))
writeLines("not R data", file.path(dir, "garbage.bin"))
`
	cmd := exec.Command(rs, "--vanilla", "-e", code, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing crates: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "global.bin")); err != nil || fi.Size() != 106 {
		t.Errorf("global.bin: %v, size %d; want the 106-byte crate of the report", err, fi.Size())
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	files := []string{p("global.bin"), p("local.bin"), p("forgot.bin"), p("model.bin"), p("garbage.bin"), "testdata/app/models/crate.bin"}
	got, err := CheckCrates(context.Background(), rs, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Unreadable != "" {
			got[i].Unreadable = "…" // R's wording varies by version
		}
	}
	want := []CrateFinding{
		{File: p("global.bin"), Global: true, Missing: []string{"model"}},
		{File: p("forgot.bin"), Missing: []string{"multiplier", "predict"}},
		{File: p("garbage.bin"), Unreadable: "…"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("findings (-want +got):\n%s", d)
	}

	w := want[0].Warning("models/crate.bin")
	for _, s := range []string{"global environment", "model will not exist", "carrier::crate(function(newdata) predict(model, newdata), model = model)", "local({ model <- model;", `saveRDS(serialize(fn, NULL), "global.bin")`} {
		if !strings.Contains(w, s) {
			t.Errorf("warning lacks %q:\n%s", s, w)
		}
	}
}
