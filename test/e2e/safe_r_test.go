package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestREADMEProgressiveRollout is the README's blue/green walkthrough
// redone as a progressive rollout with a shadow step, with real R and
// plumber: blue serves iris-crate version 1, green version 2; green is
// rolled out (shadow 20 %, then 10, 50, 100 %) while requests flow; the
// comparison, the rollout's status and the endpoint's history read as the
// README shows them.
func TestREADMEProgressiveRollout(t *testing.T) {
	dir := irisFolder(t)
	s := startServer(t, newDataDir(t))
	const ep = "r-endpoint-iris"
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "./models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic", "--skip-script-validation")
	train := exec.Command("Rscript", "train.R", filepath.Join(dir, "v2", "models"), "2")
	train.Dir = dir
	if out, err := train.CombinedOutput(); err != nil {
		t.Fatalf("train v2: %v\n%s", err, out)
	}
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", filepath.Join(dir, "v2", "models"))
	s.mustIn(t, dir, "online-deployment", "create", "-f", "green-deployment.yml")

	// Callers keep scoring the sample request throughout.
	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	secret := strings.TrimSpace(s.must(t, "online-endpoint", "get-credentials", "--name", ep, "--query", "accessToken", "-o", "tsv").stdout)
	body := sampleRequest(t, dir)
	stop := make(chan struct{})
	type tally struct{ ok, failed int }
	done := make(chan tally)
	go func() {
		var n tally
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if r, err := tryScore(c, uri, secret, "", body); err == nil && r.status == 200 {
				n.ok++
			} else {
				n.failed++
			}
		}
	}()

	// As in the README (the latency gate is off here: an R model's p99 on a
	// loaded test machine is not what this test judges).
	started := time.Now()
	r := s.mustIn(t, dir, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep,
		"--shadow", "20", "--steps", "10,50,100", "--min-requests", "20", "--bake-time", "2", "--max-latency-ratio", "0", "--wait")
	close(stop)
	n := <-done
	t.Logf("rollout --wait (%s):\n%s", time.Since(started).Round(100*time.Millisecond), r.stderr)
	if n.failed != 0 || n.ok == 0 {
		t.Errorf("callers during the rollout: %d answered 200, %d failed; want none failed", n.ok, n.failed)
	}
	for _, want := range []string{"RolloutStarted", "shadow 20 %", "RolloutStep", "RolloutSucceeded"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("rollout --wait did not print %q", want)
		}
	}
	if got := s.endpoint(t, ep).Traffic; got["green"] != 100 {
		t.Errorf("after the rollout: traffic %v, want green 100", got)
	}

	cmpTable := s.must(t, "online-endpoint", "compare", "--name", ep, "-o", "table").stdout
	t.Logf("online-endpoint compare --name %s:\n%s", ep, cmpTable)
	for _, want := range []string{"Mirror blue → green", "Agreement", "Classes (rows: live, columns: shadow)", "virginica"} {
		if !strings.Contains(cmpTable, want) {
			t.Errorf("the compare table lacks %q", want)
		}
	}
	status := s.must(t, "online-deployment", "rollout", "status", "--name", "green", "--endpoint-name", ep, "-o", "table").stdout
	t.Logf("online-deployment rollout status:\n%s", status)
	hist := s.must(t, "online-deployment", "rollout", "history", "--endpoint-name", ep, "-o", "table").stdout
	t.Logf("online-deployment rollout history:\n%s", hist)
	for _, want := range []string{"blue=100 iris-crate:1", "(mirror 20) iris-crate:2", "green=10 iris-crate:2", "green=100 iris-crate:2", "rollout 1 of green succeeded"} {
		if !strings.Contains(hist, want) {
			t.Errorf("the history lacks %q", want)
		}
	}
	// Provenance: the answer names green and model version 2.
	req := score(t, c, uri, secret, "", body)
	if req.deployment != "green" {
		t.Errorf("after the rollout the answer came from %q", req.deployment)
	}
}
