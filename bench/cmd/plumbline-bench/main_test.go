package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// requireTools skips unless nginx, R with the example's packages, and the
// plumbline binary are available; it returns the binary.
func requireTools(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the benchmark smoke run starts nginx, R and plumbline serve; skipped with -short")
	}
	skip := t.Skip
	if os.Getenv("PLUMBLINE_CI") == "1" { // .ci/run installs everything: missing is a failure
		skip = t.Fatal
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		skip("nginx is not installed (Debian: apt-get install nginx-light); the benchmark harness needs it")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		skip("wrk is not installed (Debian: apt-get install wrk); the gateway profile runs under it")
	}
	if err := rscript.Check("Rscript"); err != nil {
		skip("the benchmark harness needs R: " + err.Error())
	}
	if err := rscript.CheckPackages("Rscript", "ranger"); err != nil {
		skip("the benchmark harness's slower model needs ranger: " + err.Error())
	}
	if bin := os.Getenv("PLUMBLINE_BIN"); bin != "" {
		return bin
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "plumbline")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/plumbline")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plumbline: %v\n%s", err, out)
	}
	return bin
}

// watchDescendants records every descendant of this process (pid and
// start time) until stop is called.
func watchDescendants() (stop func() map[int]uint64) {
	seen := map[int]uint64{}
	var mu sync.Mutex // protects seen
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			d := descendants(os.Getpid())
			mu.Lock()
			for p, st := range d {
				seen[p] = st
			}
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() map[int]uint64 {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// descendants maps every live descendant of root to its start time.
func descendants(root int) map[int]uint64 {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	start := map[int]uint64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(p); err == nil && st.State != "Z" {
			parent[p], start[p] = st.PPID, st.StartTime
		}
	}
	out := map[int]uint64{}
	for p := range parent {
		for q, hops := parent[p], 0; q > 1 && hops < 64; q, hops = parent[q], hops+1 {
			if q == root {
				out[p] = start[p]
				break
			}
		}
	}
	return out
}

// leftovers lists the processes of seen that still run (same pid, same
// start time), other than the go tool's own children of this test.
func leftovers(seen map[int]uint64) []string {
	var out []string
	for p, st := range seen {
		s, err := proc.ReadStat(p)
		if err != nil || s.StartTime != st || s.State == "Z" {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		out = append(out, fmt.Sprintf("pid %d: %s", p, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return out
}

// TestSmoke runs every scenario for about a second (`make bench-smoke`):
// it proves the harness works end to end and never looks at the numbers.
func TestSmoke(t *testing.T) {
	bin := requireTools(t)
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	var stdout, stderr lockedBuffer
	stop := watchDescendants()
	code := run(context.Background(), []string{"-smoke", "-plumbline", bin, "-out", out}, &stdout, &stderr)
	seen := stop()
	if code != 0 {
		t.Fatalf("plumbline-bench -smoke: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{"Smoke run", "## Machine", "## Versions", "## Targets", "## 1. Gateway hop", "## 2. R endpoint",
		"## 3. Overload", "## 4. Rollout", "## 5. Deploy time", "## 6. Memory", "## 8. Connection storm", "### TLS handshake storm",
		"### Where the gateway's CPU goes", "plumbline-https-h2", "nginx-https", "## 9. Lean R runtime", "go run ./bench/cmd/plumbline-bench -smoke"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report has no %q; report:\n%s", want, md)
		}
	}
	for _, line := range strings.Split(md, "\n") {
		if !strings.Contains(line, "| not run |") {
			continue
		}
		// Outside CI a machine without a container engine runs every
		// scenario but the containers one (its tests skip the same way).
		if strings.Contains(line, "no container engine") && os.Getenv("PLUMBLINE_CI") != "1" {
			t.Logf("not judged without a container engine: %s", line)
			continue
		}
		t.Errorf("a target was not judged in a full smoke run: %s\nreport:\n%s", line, md)
	}
	if !strings.Contains(stdout.String(), "TARGET") {
		t.Errorf("stdout has no target table:\n%s", stdout.String())
	}
	if left := leftovers(seen); len(left) > 0 {
		t.Errorf("processes the harness started are still running after it returned:\n%s", strings.Join(left, "\n"))
	}
}

// TestInterruptStopsEverything cancels a run (as Ctrl-C does) in the middle
// of the gateway scenario and checks that nothing it started survives.
func TestInterruptStopsEverything(t *testing.T) {
	bin := requireTools(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	go func() {
		for !strings.Contains(stderr.String(), "gateway closed-loop rep 1") {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		cancel()
	}()
	stop := watchDescendants()
	code := run(ctx, []string{"-smoke", "-only", "gateway,r", "-plumbline", bin, "-out", filepath.Join(t.TempDir(), "b.md")}, &stdout, &stderr)
	seen := stop()
	if code == 0 {
		t.Errorf("an interrupted run: exit 0, want non-zero\nstderr:\n%s", stderr.String())
	}
	if len(seen) < 4 {
		t.Errorf("saw %d child processes, want the backend, nginx and plumbline serve at least; stderr:\n%s", len(seen), stderr.String())
	}
	if left := leftovers(seen); len(left) > 0 {
		t.Errorf("processes the harness started are still running after an interrupt:\n%s", strings.Join(left, "\n"))
	}
}
