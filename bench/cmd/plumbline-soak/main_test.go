package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/test/testenv"
)

// TestSoakSmoke runs the soak for 20 seconds (make soak runs it for 10
// minutes, outside CI) to prove the tool works: the iris example deployed,
// load and changes without a failure, and the report's lines.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak starts R and plumbline serve; skipped with -short")
	}
	skip := t.Skip
	if os.Getenv("PLUMBLINE_CI") == "1" { // .ci/run installs everything: missing is a failure
		skip = t.Fatal
	}
	if err := rscript.Check("Rscript"); err != nil {
		skip("the soak needs R: " + err.Error())
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin, cleanup, err := testenv.Binary(root, "plumbline-soak-")
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-plumbline", bin, "-repo", root, "-duration", "20s", "-churn-every", "3s", "-sample-every", "5s"}, &stdout, &stderr)
	t.Logf("report:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	for _, want := range []string{"requests: ", "failed: 0, shed with 429: ", "changes: ", "server RSS: ", "server open fds: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report: no %q", want)
		}
	}
}
