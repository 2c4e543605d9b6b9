package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upServer is the server `plumbline up` started in the background for a
// data dir; the test stops it at the end.
func upServer(t *testing.T, dd string) *server {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dd, "server.json"))
	if err != nil {
		t.Fatalf("up did not leave a server: %v", err)
	}
	var st serverState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(st.PID, syscall.SIGTERM)
		deadline := time.Now().Add(45 * time.Second)
		for alive(st.PID) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(st.PID) {
			syscall.Kill(st.PID, syscall.SIGKILL)
			t.Errorf("the server up started (pid %d) did not stop within 45s of SIGTERM", st.PID)
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dd, "serve.log"))
			t.Logf("serve.log:\n%s", log)
		}
	})
	return &server{dataDir: dd, state: st, log: &logBuffer{}}
}

// TestREADMEWalkthrough runs the README as a user would, on a fresh data
// dir: up (which starts the server) → invoke → a green deployment of a
// second model version → 90/10 observed → mirror visible in metrics → all
// traffic to green → delete blue → down.
func TestREADMEWalkthrough(t *testing.T) {
	dir := irisFolder(t)
	dd := newDataDir(t)

	start := time.Now()
	up := runCLI(t, dd, dir, "up", ".", "--listen", "127.0.0.1:0")
	took := time.Since(start)
	s := upServer(t, dd)
	if up.code != 0 {
		t.Fatalf("up: exit %d\n%s", up.code, up)
	}
	if got := strings.TrimSpace(up.stdout); got != `{"species":["virginica"]}` {
		t.Fatalf("up printed %q, want the prediction for the sample request", got)
	}
	for _, want := range []string{"registered model iris-crate version 1", "deployment blue ready", "Scoring URI: https://localhost:", "curl --cacert", "library(httr2)"} {
		if !strings.Contains(up.stderr, want) {
			t.Errorf("up's output lacks %q:\n%s", want, up.stderr)
		}
	}
	t.Logf("plumbline up (server start, model, endpoint, deployment, first scored request): %.2fs", took.Seconds())

	inv := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", "r-endpoint-iris", "--request-file", "sample_request.json")
	if strings.TrimSpace(inv.stdout) != `{"species":["virginica"]}` {
		t.Fatalf("invoke: %s", inv)
	}

	// Green: a second model version.
	rs, err := exec.LookPath("Rscript")
	if err != nil {
		t.Fatal(err)
	}
	train := exec.Command(rs, "train.R", filepath.Join(dir, "v2", "models"), "2")
	train.Dir = dir
	if out, err := train.CombinedOutput(); err != nil {
		t.Fatalf("train v2: %v\n%s", err, out)
	}
	var m struct{ Version string }
	s.mustJSON(t, &m, "model", "create", "--name", "iris-crate", "--path", filepath.Join(dir, "v2", "models"))
	if m.Version != "2" {
		t.Fatalf("second model version: got %q, want 2", m.Version)
	}
	s.mustIn(t, dir, "online-deployment", "create", "-f", "green-deployment.yml")
	var green deploymentView
	s.mustJSON(t, &green, "online-deployment", "show", "--name", "green", "--endpoint-name", "r-endpoint-iris")
	if green.Model != "azureml:iris-crate:2" {
		t.Errorf("green pins %q, want azureml:iris-crate:2", green.Model)
	}

	c := s.httpClient(t)
	uri := s.endpoint(t, "r-endpoint-iris").ScoringURI
	secret := strings.TrimSpace(s.must(t, "online-endpoint", "get-credentials", "--name", "r-endpoint-iris", "--query", "accessToken", "-o", "tsv").stdout)
	body := sampleRequest(t, dir)
	count := func(n int) map[string]int {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			r := score(t, c, uri, secret, "", body)
			if r.status != 200 {
				t.Fatalf("request %d: %d %s", i, r.status, r.body)
			}
			got[r.deployment]++
		}
		return got
	}

	s.must(t, "online-endpoint", "update", "--name", "r-endpoint-iris", "--traffic", "blue=90 green=10")
	if got := count(1000); got["green"] < 50 || got["green"] > 150 || got["blue"]+got["green"] != 1000 {
		t.Errorf("90/10 over 1000 requests: got %v, want green within 100 ± 50", got)
	}

	s.must(t, "online-endpoint", "update", "--name", "r-endpoint-iris", "--traffic", "blue=100 green=0", "--mirror-traffic", "green=10")
	if got := count(300); got["blue"] != 300 {
		t.Errorf("with green mirrored: got %v, want every answer from blue", got)
	}
	waitFor(t, 10*time.Second, "mirrored requests in /metrics", func() (bool, string) {
		for _, l := range strings.Split(s.metrics(t, c), "\n") {
			if strings.HasPrefix(l, "plumbline_mirrored_requests_total{") && strings.Contains(l, `deployment="green"`) && strings.Contains(l, `result="sent"`) && !strings.HasSuffix(l, " 0") {
				return true, l
			}
		}
		return false, "no plumbline_mirrored_requests_total{deployment=green,result=sent} > 0"
	})

	s.must(t, "online-endpoint", "update", "--name", "r-endpoint-iris", "--traffic", "green=100", "--mirror-traffic", "green=0")
	if got := count(20); got["green"] != 20 {
		t.Errorf("all traffic to green: got %v", got)
	}
	s.must(t, "online-deployment", "delete", "--name", "blue", "--endpoint-name", "r-endpoint-iris", "--yes")
	var deps []deploymentView
	s.mustJSON(t, &deps, "online-deployment", "list", "--endpoint-name", "r-endpoint-iris")
	if len(deps) != 1 || deps[0].Name != "green" {
		t.Errorf("after deleting blue: got %v, want only green", deps)
	}

	// Secrets never reach the server log or the events.
	logText, _ := os.ReadFile(filepath.Join(dd, "serve.log"))
	evs := s.must(t, "online-deployment", "events", "--name", "green", "--endpoint-name", "r-endpoint-iris", "-o", "json").stdout
	for what, secretValue := range map[string]string{"the aml_token": secret, "the admin token": s.adminToken(t)} {
		if strings.Contains(string(logText), secretValue) || strings.Contains(evs, secretValue) {
			t.Errorf("%s appears in serve.log or the events", what)
		}
	}
	if !strings.Contains(string(logText), "scoring request") {
		t.Error("serve.log has no access-log line: the secret check above read the wrong file")
	}

	s.mustIn(t, dir, "down", ".")
	var eps []endpointView
	s.mustJSON(t, &eps, "online-endpoint", "list")
	if len(eps) != 0 {
		t.Errorf("after down: endpoints %v, want none", eps)
	}
	waitFor(t, 10*time.Second, "no instance process left", func() (bool, string) {
		procs := instanceProcs(dd)
		return len(procs) == 0, fmt.Sprint(procs)
	})
}

// TestUpOtherExamples: the same up → invoke → down for Azure's R
// multi-model shape and for a Python server through the generic
// environment.
func TestUpOtherExamples(t *testing.T) {
	requireR(t, "plumber", "jsonlite")
	py, err := exec.LookPath("python3")
	if err != nil {
		skip(t, "python3 is not installed")
	}
	_ = py
	dd := newDataDir(t)
	s := startServer(t, dd)

	t.Run("r-multimodel", func(t *testing.T) {
		dir := t.TempDir()
		copyTree(t, filepath.Join(repoRoot, "examples", "r-multimodel"), dir)
		os.RemoveAll(filepath.Join(dir, "models"))
		rs, _ := exec.LookPath("Rscript")
		train := exec.Command(rs, "train.R")
		train.Dir = dir
		if out, err := train.CombinedOutput(); err != nil {
			t.Fatalf("train.R: %v\n%s", err, out)
		}
		up := s.mustIn(t, dir, "up", "-f", "r-endpoint.yml", "-f", "r-deployment.yml")
		var preds []float64
		if err := json.Unmarshal([]byte(up.stdout), &preds); err != nil || len(preds) != 3 {
			t.Fatalf("up printed %q, want three predictions for model a", up.stdout)
		}
		var ep endpointView
		for _, model := range []string{"b", "c"} {
			req := filepath.Join(dir, "req-"+model+".json")
			os.WriteFile(req, []byte(`{"model":"`+model+`","x1":[0.77,-0.11,-0.75],"x2":[-0.25,-0.96,-1.0]}`), 0o644)
			r := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", "r-endpoint-multi", "--request-file", req)
			if err := json.Unmarshal([]byte(r.stdout), &preds); err != nil || len(preds) != 3 {
				t.Errorf("model %s: got %q", model, r.stdout)
			}
		}
		s.mustJSON(t, &ep, "online-endpoint", "show", "--name", "r-endpoint-multi")
		s.mustIn(t, dir, "down", "-f", "r-endpoint.yml")
	})

	t.Run("python-generic", func(t *testing.T) {
		dir := t.TempDir()
		copyTree(t, filepath.Join(repoRoot, "examples", "python-generic"), dir)
		up := s.mustIn(t, dir, "up", ".")
		if got := strings.TrimSpace(up.stdout); !strings.HasPrefix(got, `{"predictions": [`) {
			t.Fatalf("up printed %q, want predictions", got)
		}
		var d deploymentView
		s.mustJSON(t, &d, "online-deployment", "show", "--name", "blue", "--endpoint-name", "py-endpoint")
		if d.Runtime != "generic" {
			t.Errorf("runtime %q, want generic", d.Runtime)
		}
		r := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", "py-endpoint", "--request-file", "sample_request.json")
		if strings.TrimSpace(r.stdout) != strings.TrimSpace(up.stdout) {
			t.Errorf("invoke %q differs from up's %q", r.stdout, up.stdout)
		}
		s.mustIn(t, dir, "down", ".")
	})
}

// TestInitScaffoldsADeployableFolder: init r DIR, train, up: a prediction.
func TestInitScaffoldsADeployableFolder(t *testing.T) {
	requireR(t, "plumber", "jsonlite")
	dd := newDataDir(t)
	s := startServer(t, dd)
	parent := t.TempDir()
	r := runCLI(t, dd, parent, "init", "r", "my-model")
	if r.code != 0 || !strings.Contains(r.stderr, "Created my-model for endpoint my-model") {
		t.Fatalf("init: %s", r)
	}
	dir := filepath.Join(parent, "my-model")
	for _, f := range []string{"docker-context/Dockerfile", "docker-context/start_plumber.R", "src/plumber.R", "train.R", "endpoint.yml", "deployment.yml", "sample_request.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	if again := runCLI(t, dd, parent, "init", "r", "my-model"); again.code != 0 || !strings.Contains(again.stderr, "Nothing to add") {
		t.Errorf("init again on the scaffold: want exit 0 and nothing added:\n%s", again)
	}
	rs, _ := exec.LookPath("Rscript")
	train := exec.Command(rs, "train.R")
	train.Dir = dir
	if out, err := train.CombinedOutput(); err != nil {
		t.Fatalf("train.R: %v\n%s", err, out)
	}
	up := s.mustIn(t, dir, "up", ".")
	if strings.Contains(up.stderr, "warning") {
		t.Errorf("up of the scaffold warns about the scaffold itself:\n%s", up.stderr)
	}
	var got struct{ Prediction []float64 }
	if err := json.Unmarshal([]byte(up.stdout), &got); err != nil || len(got.Prediction) != 2 {
		t.Fatalf("up printed %q, want two predictions", up.stdout)
	}
	s.mustIn(t, dir, "down", ".")
}

// TestUploadLimit: serve --max-upload-bytes refuses a larger model with a
// clear message and stores nothing.
func TestUploadLimit(t *testing.T) {
	dd := newDataDir(t)
	s := startServer(t, dd, "--max-upload-bytes", "1000")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "big.bin"), make([]byte, 5000), 0o644)
	r := s.cliIn(t, dir, "model", "create", "--name", "big", "--path", "models")
	if r.code != 1 || !strings.Contains(r.stderr, "too large") {
		t.Fatalf("got exit %d, want 1 with a 'too large' message:\n%s", r.code, r)
	}
	var ms []any
	s.mustJSON(t, &ms, "model", "list")
	if len(ms) != 0 {
		t.Errorf("a refused upload registered %v", ms)
	}
}
