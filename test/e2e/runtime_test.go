package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The seed's endpoint and deployment names (examples/r-iris).
const (
	irisEndpoint   = "r-endpoint-iris"
	irisPrediction = `{"species":["virginica"]}`
)

// TestRIrisSeedFolder deploys the seed's folder as a user would, with two
// instances, scores it, reads its logs, then kills one instance's R process
// with SIGKILL and checks that it is replaced while the deployment stays
// Succeeded.
func TestRIrisSeedFolder(t *testing.T) {
	dir := irisFolder(t)
	if !strings.Contains(iris.trainOut, "crate.bin") {
		t.Errorf("train.R did not say it wrote crate.bin:\n%s", iris.trainOut)
	}
	dd := newDataDir(t)
	s := startServer(t, dd)

	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml")
	start := time.Now()
	r := s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic", "--set", "instance_count=2", "-o", "json")
	took := time.Since(start)
	said := "?"
	if m := regexp.MustCompile(`Succeeded in ([0-9.]+s)`).FindStringSubmatch(r.stderr); m != nil {
		said = m[1]
	}
	t.Logf("online-deployment create (2 R plumber instances) → Succeeded: %s wall clock (the CLI reported %s)", took.Round(time.Millisecond), said)
	var d deploymentView
	decodeJSON(t, r, &d)
	if d.ProvisioningState != "Succeeded" || d.Runtime != "plumber" || d.Model != "azureml:iris-crate:1" || d.InstanceCount != 2 || len(d.Instances) != 2 || d.ready() != 2 {
		t.Fatalf("after create: want Succeeded, runtime plumber, model azureml:iris-crate:1, 2 of 2 instances ready; got %s (runtime %q, model %q, instance_count %d)", d, d.Runtime, d.Model, d.InstanceCount)
	}
	if ep := s.endpoint(t, irisEndpoint); ep.Traffic["blue"] != 100 {
		t.Errorf("after --all-traffic: traffic %v, want blue=100", ep.Traffic)
	}

	inv := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", irisEndpoint, "--request-file", "sample_request.json")
	if got := strings.TrimSpace(inv.stdout); got != irisPrediction {
		t.Errorf("invoke: got %q, want %q", got, irisPrediction)
	}
	// The seed's plumber.R runs on the lean R runtime, and the events say
	// so and why.
	lean := false
	for _, e := range s.events(t, irisEndpoint, "blue") {
		if e.Reason == "Notice" && strings.HasPrefix(e.Message, "R runtime: lean (plumbline's R workers): plumber.R is loaded once") {
			lean = true
		}
	}
	if !lean {
		t.Errorf("no event says the deployment runs on the lean R runtime: %+v", s.events(t, irisEndpoint, "blue"))
	}

	rec0 := record(t, dd, irisEndpoint, "blue", "blue-0")
	rec1 := record(t, dd, irisEndpoint, "blue", "blue-1")

	t.Run("get-logs", func(t *testing.T) {
		r := s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", irisEndpoint, "--lines", "20", "--instance", "all")
		for _, rec := range []instanceRecord{rec0, rec1} {
			want := fmt.Sprintf("Running plumber API at http://127.0.0.1:%d", rec.Port)
			if !strings.Contains(r.stdout, want) {
				t.Errorf("get-logs --lines 20 --instance all: no %q:\n%s", want, r.stdout)
			}
		}
		// Without --instance, one instance is picked as Azure does: the
		// first ready one, blue-0.
		r = s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", irisEndpoint, "--lines", "20")
		if !strings.Contains(r.stdout, fmt.Sprintf("Running plumber API at http://127.0.0.1:%d", rec0.Port)) ||
			strings.Contains(r.stdout, fmt.Sprintf(":%d", rec1.Port)) || !strings.Contains(r.stderr, "Logs of instance blue-0 (of 2)") {
			t.Errorf("get-logs without --instance: want blue-0's lines only (port %d, not %d) and a note:\n%s", rec0.Port, rec1.Port, r)
		}
		r = s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", irisEndpoint, "--lines", "20", "--instance", "blue-1")
		if !strings.Contains(r.stdout, fmt.Sprintf("Running plumber API at http://127.0.0.1:%d", rec1.Port)) ||
			strings.Contains(r.stdout, fmt.Sprintf(":%d", rec0.Port)) {
			t.Errorf("get-logs --instance blue-1: want blue-1's lines only (port %d, not %d):\n%s", rec1.Port, rec0.Port, r.stdout)
		}
		r = s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", irisEndpoint, "--lines", "1", "--instance", "blue-1")
		if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n != 1 {
			t.Errorf("get-logs --lines 1 --instance blue-1: got %d lines, want 1:\n%s", n, r.stdout)
		}
	})

	t.Run("kill -9 of an instance", func(t *testing.T) {
		if !alive(rec0.PID) || !alive(rec1.PID) {
			t.Fatalf("the instances' recorded pids %d and %d are not running", rec0.PID, rec1.PID)
		}
		killed := time.Now()
		if err := syscall.Kill(rec0.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d (blue-0): %v", rec0.PID, err)
		}
		var states []string
		var d deploymentView
		waitFor(t, 60*time.Second, "blue-0 replaced and 2 instances ready", func() (bool, string) {
			d = s.deployment(t, irisEndpoint, "blue")
			states = append(states, d.ProvisioningState)
			now, ok := findRecord(t, dd, irisEndpoint, "blue", "blue-0")
			return ok && d.ready() == 2 && now.PID != rec0.PID && alive(now.PID), d.String()
		})
		t.Logf("blue-0 replaced and ready %s after kill -9", time.Since(killed).Round(time.Millisecond))
		for _, st := range states {
			if st != "Succeeded" {
				t.Errorf("provisioning_state while blue-0 was replaced: %v, want Succeeded throughout", states)
				break
			}
		}
		for _, in := range d.Instances {
			if in.Name == "blue-0" && in.Restarts < 1 {
				t.Errorf("blue-0 restarts: got %d, want at least 1", in.Restarts)
			}
		}
		if now := record(t, dd, irisEndpoint, "blue", "blue-1"); now.PID != rec1.PID || !alive(rec1.PID) {
			t.Errorf("blue-1 was disturbed: pid %d → %d", rec1.PID, now.PID)
		}
		var exited, restarted bool
		for _, e := range s.events(t, irisEndpoint, "blue") {
			if e.Instance == "blue-0" && e.Reason == "Exited" {
				exited = true
			}
			if e.Instance == "blue-0" && e.Reason == "Restarted" && exited {
				restarted = true
			}
		}
		if !exited || !restarted {
			t.Errorf("events: want blue-0 Exited then Restarted; got exited=%v restarted=%v", exited, restarted)
		}
		inv := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", irisEndpoint, "--request-file", "sample_request.json")
		if got := strings.TrimSpace(inv.stdout); got != irisPrediction {
			t.Errorf("invoke after the replacement: got %q, want %q", got, irisPrediction)
		}
	})
}

// TestRDeploymentFailures deploys R scripts that go wrong: a syntax error
// and a missing package fail the deployment with a reason a user can act
// on and leave no R process behind; a script that exits mid-request is
// restarted and serves again.
func TestRDeploymentFailures(t *testing.T) {
	requireR(t, "plumber")
	dd := newDataDir(t)
	s := startServer(t, dd)
	fixtures := filepath.Join("testdata", "r")
	s.must(t, "online-endpoint", "create", "--name", "r-failures", "--auth-mode", "key")

	deployCode := func(t *testing.T, name, code string, set ...string) (result, deploymentView) {
		t.Helper()
		args := []string{"online-deployment", "create", "-f", "deployment.yml",
			"--set", "name=" + name, "--set", "code_configuration.code=./" + code}
		for _, kv := range set {
			args = append(args, "--set", kv)
		}
		r := s.cliIn(t, fixtures, args...)
		return r, s.deployment(t, "r-failures", name)
	}
	deploy := func(t *testing.T, name string) (result, deploymentView) {
		t.Helper()
		return deployCode(t, name, name)
	}
	// noneLeft waits until no process of the deployment (its code
	// snapshot in the data dir's cache) and no R child of the server runs.
	noneLeft := func(t *testing.T, d deploymentView) {
		t.Helper()
		code := filepath.Join(dd, "cache", strings.TrimPrefix(d.CodeDigest, "sha256:"))
		waitFor(t, 15*time.Second, "no R process left for "+d.Name, func() (bool, string) {
			var mine []string
			for pid, root := range instanceProcs(dd) {
				if strings.HasPrefix(root, code) {
					mine = append(mine, fmt.Sprint(pid))
				}
			}
			rs := rDescendants(s.pid())
			return len(mine) == 0 && len(rs) == 0, fmt.Sprintf("instances of %s: %v; R children of the server: %v", d.Name, mine, rs)
		})
	}

	t.Run("syntax error", func(t *testing.T) {
		r, d := deploy(t, "syntax-error")
		if r.code != 1 {
			t.Errorf("create: got exit %d, want 1:\n%s", r.code, r)
		}
		if d.ProvisioningState != "Failed" || !strings.Contains(d.Reason, "unexpected '}'") {
			t.Errorf("want Failed with R's parse error (unexpected '}') in the reason, got %s", d)
		}
		// The reason reads as docs/ARCHITECTURE.md shows it.
		if want := "ResourceNotReady: instance syntax-error-0 exited with code 1; last log lines: "; !strings.HasPrefix(d.Reason, want) {
			t.Errorf("reason: want it to start %q, got %q", want, d.Reason)
		}
		t.Logf("reason: %s", d.Reason)
		noneLeft(t, d)
	})

	t.Run("missing package", func(t *testing.T) {
		r, d := deploy(t, "missing-package")
		if r.code != 1 {
			t.Errorf("create: got exit %d, want 1:\n%s", r.code, r)
		}
		if d.ProvisioningState != "Failed" || !strings.Contains(d.Reason, "notapkg123") || !strings.Contains(d.Reason, `install.packages("notapkg123")`) {
			t.Errorf("want Failed naming notapkg123 and how to install it, got %s", d)
		}
		if strings.Contains(d.Reason, "r-cran-notapkg123") {
			t.Errorf("the hint names a Debian package that does not exist: %s", d.Reason)
		}
		t.Logf("reason: %s", d.Reason)
		noneLeft(t, d)
	})

	t.Run("R exits mid-request, plumber's own server", func(t *testing.T) {
		r, d := deployCode(t, "quits", "quits", "plumbline.r_runtime=plumber")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: want exit 0 and Succeeded, got %s:\n%s", d, r)
		}
		if rs := rDescendants(s.pid()); len(rs) != 1 {
			t.Errorf("R processes under the server with one instance running: got %v, want one", rs)
		}
		s.must(t, "online-endpoint", "update", "--name", "r-failures", "--traffic", "quits=100")
		c := s.httpClient(t)
		uri := s.endpoint(t, "r-failures").ScoringURI
		key := s.keys(t, "r-failures").PrimaryKey
		for i := 1; i <= 2; i++ {
			if rep := score(t, c, uri, key, "", "{}"); rep.status != http.StatusOK || rep.body != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("request %d: got %d %s, want 200 {\"n\":%d}", i, rep.status, rep.body, i)
			}
		}
		before := record(t, dd, "r-failures", "quits", "quits-0")
		rep := score(t, c, uri, key, "", "{}")
		if rep.status == http.StatusOK {
			t.Errorf("request 3 (the one that quits R): got 200 %s, want an error status", rep.body)
		}
		t.Logf("request 3, during which R quit: %d %s", rep.status, rep.body)
		waitFor(t, 60*time.Second, "quits-0 restarted and ready", func() (bool, string) {
			d = s.deployment(t, "r-failures", "quits")
			now, ok := findRecord(t, dd, "r-failures", "quits", "quits-0")
			return ok && d.ready() == 1 && now.PID != before.PID, d.String()
		})
		// A fresh R process: its counter starts again.
		if rep := scoreRouted(t, c, uri, key, "", "{}"); rep.status != http.StatusOK || rep.body != `{"n":1}` {
			t.Errorf("after the restart: got %d %s, want 200 {\"n\":1}", rep.status, rep.body)
		}
		if d.ProvisioningState != "Succeeded" || len(d.Instances) != 1 || d.Instances[0].Restarts < 1 {
			t.Errorf("after the restart: want Succeeded with quits-0 restarted at least once, got %s", d)
		}
		var reasons []string
		for _, e := range s.events(t, "r-failures", "quits") {
			if e.Instance == "quits-0" {
				reasons = append(reasons, e.Reason)
			}
		}
		if got := strings.Join(reasons, " "); !strings.Contains(got, "Exited") || !strings.Contains(got, "Restarted") {
			t.Errorf("events of quits-0: got %v, want Exited and Restarted", reasons)
		}
	})

	// On the lean runtime the same script costs only the request during
	// which R quit: its worker is forked again from the loaded session
	// (its counter starts again) and the instance is not restarted.
	t.Run("R exits mid-request, lean runtime", func(t *testing.T) {
		r, d := deployCode(t, "quits-lean", "quits")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: want exit 0 and Succeeded, got %s:\n%s", d, r)
		}
		if !strings.Contains(r.stderr+r.stdout, "R runtime: lean") {
			t.Errorf("create does not say the runtime is lean:\n%s", r)
		}
		s.must(t, "online-endpoint", "update", "--name", "r-failures", "--traffic", "quits-lean=100")
		c := s.httpClient(t)
		uri := s.endpoint(t, "r-failures").ScoringURI
		key := s.keys(t, "r-failures").PrimaryKey
		before := record(t, dd, "r-failures", "quits-lean", "quits-lean-0")
		for i := 1; i <= 2; i++ {
			if rep := score(t, c, uri, key, "", "{}"); rep.status != http.StatusOK || rep.body != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("request %d: got %d %s, want 200 {\"n\":%d}", i, rep.status, rep.body, i)
			}
		}
		rep := score(t, c, uri, key, "", "{}")
		if rep.status == http.StatusOK {
			t.Errorf("request 3 (the one that quits R): got 200 %s, want an error status", rep.body)
		}
		t.Logf("request 3, during which R quit: %d %s", rep.status, rep.body)
		for i := 1; i <= 2; i++ {
			if rep := score(t, c, uri, key, "", "{}"); rep.status != http.StatusOK || rep.body != fmt.Sprintf(`{"n":%d}`, i) {
				t.Errorf("request %d after the quit: got %d %s, want 200 {\"n\":%d} from a fresh worker", i, rep.status, rep.body, i)
			}
		}
		d = s.deployment(t, "r-failures", "quits-lean")
		now := record(t, dd, "r-failures", "quits-lean", "quits-lean-0")
		if d.ProvisioningState != "Succeeded" || d.ready() != 1 || d.Instances[0].Restarts != 0 || now.PID != before.PID {
			t.Errorf("after the quit: want Succeeded, the instance ready, not restarted, same pid %d; got %s (pid %d)", before.PID, d, now.PID)
		}
	})
}
