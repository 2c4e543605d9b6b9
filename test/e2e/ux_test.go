package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRErrorsReachTheCaller: a plumber.R whose function throws. The caller
// gets the 424 with R's error, the request id and the deployment in the
// body; the instance log has the error under the request id, with a
// timestamp; invoke names the error and the command that finds it; invoke
// -v prints status, latency, deployment and request id; show and list print
// the deployment's recent error rate and latency; with error detail off the
// message stays in the log only.
//
// It runs on both R runtimes: plumber's own server (through plumbline's
// launcher) and the lean runtime.
func TestRErrorsReachTheCaller(t *testing.T) {
	requireR(t, "plumber", "jsonlite")
	dd := newDataDir(t)
	s := startServer(t, dd)
	for _, rt := range []string{"plumber", "lean"} {
		t.Run(rt, func(t *testing.T) { testRErrors(t, s, rt) })
	}
}

func testRErrors(t *testing.T, s *server, runtime string) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "ux", "throws"), dir)
	ep := "cars-errors-" + runtime
	for _, f := range []string{"endpoint.yml", "deployment.yml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		doc := strings.ReplaceAll(string(b), "cars-errors", ep)
		if f == "deployment.yml" {
			doc += "plumbline:\n  r_runtime: " + runtime + "\n"
		}
		writeFile(t, filepath.Join(dir, f), doc)
	}
	s.mustIn(t, dir, "up", ".", "--no-test")
	if got := s.deployment(t, ep, "blue"); got.Runtime != "plumber" {
		t.Fatalf("runtime %q, want plumber (R)", got.Runtime)
	}

	// invoke of a request without cyl.
	inv := s.cliIn(t, dir, "online-endpoint", "invoke", "--name", ep, "--request-file", "bad.json")
	if inv.code != 1 {
		t.Fatalf("invoke of a failing request: want exit 1\n%s", inv)
	}
	rid := regexp.MustCompile(`x-request-id ([0-9a-f-]{36})`).FindStringSubmatch(inv.stderr)
	if rid == nil {
		t.Fatalf("invoke's error names no request id:\n%s", inv)
	}
	for _, want := range []string{
		"scoring returned 424 Failed Dependency (the model answered 500",
		"R error: object 'cyl' not found (in eval(",
		"plumbline online-deployment get-logs --name blue --endpoint-name " + ep + " | grep " + rid[1],
	} {
		if !strings.Contains(inv.stderr, want) {
			t.Errorf("invoke's error lacks %q:\n%s", want, inv.stderr)
		}
	}

	// The same through HTTP, as an application sees it.
	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	key := s.keys(t, ep).PrimaryKey
	r := score(t, c, uri, key, "", `{"wt": [2.62]}`)
	var body struct {
		Error, Message, Call, Deployment, Endpoint string
		RequestID                                  string `json:"request_id"`
		Class                                      []string
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("424 body is not JSON: %v: %s", err, r.body)
	}
	if r.status != 424 || r.header.Get("ms-azureml-model-error-statuscode") != "500" {
		t.Errorf("status %d, model status %q; want 424 and 500", r.status, r.header.Get("ms-azureml-model-error-statuscode"))
	}
	if body.Message != "object 'cyl' not found" || body.Error != "500 - Internal server error" ||
		body.RequestID != r.header.Get("x-request-id") || body.Deployment != "blue" || body.Endpoint != ep ||
		strings.Join(body.Class, ",") != "simpleError,error,condition" {
		t.Errorf("424 body %s: want plumber's error text, R's message and class, the response's request id %s, endpoint and deployment", r.body, r.header.Get("x-request-id"))
	}

	// The instance log: a timestamped line per error with the request id.
	logs := s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", ep).stdout
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR x-request-id=` + rid[1] + ` POST /score: R error answered with status 500: in eval\(.*\): object 'cyl' not found \[simpleError/error/condition\]$`)
	if !line.MatchString(logs) {
		t.Errorf("the instance log has no timestamped line for request %s:\n%s", rid[1], logs)
	}
	if !regexp.MustCompile(`(?m)^\S+Z MESSAGE x-request-id=` + rid[1] + ` POST /score: scoring 1 row\(s\)$`).MatchString(logs) {
		t.Errorf("the script's message() during request %s is not logged with its id:\n%s", rid[1], logs)
	}

	// invoke -v of a request that works.
	ok := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", ep, "--request-file", "good.json", "-v")
	if !strings.Contains(ok.stdout, `"prediction":[23.782]`) {
		t.Errorf("invoke printed %q", ok.stdout)
	}
	if !regexp.MustCompile(`^200 OK in \d+\.\d ms \(gateway: queue \d+\.\d{3} ms, model \d+\.\d{3} ms\); deployment blue; x-request-id [0-9a-f-]{36}\n$`).MatchString(ok.stderr) {
		t.Errorf("invoke -v printed %q, want status, latency, deployment and request id", ok.stderr)
	}

	// Health: 3 requests failed (invoke's, the HTTP one, one more), 2 answered.
	score(t, c, uri, key, "", `{"wt": [3]}`)
	score(t, c, uri, key, "", `{"wt": [3], "cyl": [8]}`)
	var d struct {
		Health struct {
			Requests, Errors int
			ErrorRate        float64  `json:"error_rate"`
			P50              *float64 `json:"p50_ms"`
			P99              *float64 `json:"p99_ms"`
		}
	}
	s.mustJSON(t, &d, "online-deployment", "show", "--name", "blue", "--endpoint-name", ep)
	if d.Health.Requests != 5 || d.Health.Errors != 3 || d.Health.ErrorRate != 0.6 || d.Health.P50 == nil || d.Health.P99 == nil || *d.Health.P99 < *d.Health.P50 {
		t.Errorf("show's health: %+v, want 5 requests, 3 errors (0.6), p50 ≤ p99", d.Health)
	}
	table := s.must(t, "online-deployment", "list", "--endpoint-name", ep, "-o", "table").stdout
	if !strings.Contains(table, "3/5 (60.0%)") || !regexp.MustCompile(`\d+\.\d ms`).MatchString(table) {
		t.Errorf("list's table lacks the error rate and latency:\n%s", table)
	}

	// Error detail off: the caller gets the request id, the log keeps R's message.
	s.mustIn(t, dir, "online-deployment", "update", "-f", "deployment.yml", "--set", "plumbline.error_detail=false")
	r = score(t, c, uri, key, "", `{"wt": [2.62]}`)
	if r.status != 424 || strings.Contains(r.body, "cyl") || !strings.Contains(r.body, r.header.Get("x-request-id")) || !strings.Contains(r.body, "hidden") {
		t.Errorf("with plumbline.error_detail false: %d %s; want a 424 with the request id and no R message", r.status, r.body)
	}
	waitFor(t, 20*time.Second, "R's message in the log under the request id", func() (bool, string) {
		logs := s.must(t, "online-deployment", "get-logs", "--name", "blue", "--endpoint-name", ep).stdout
		return strings.Contains(logs, "x-request-id="+r.header.Get("x-request-id")+" POST /score: R error answered with status 500: in eval("), logs
	})
}

// upSnippets are the blocks `up` prints after "Call it from any folder".
func upSnippets(t *testing.T, stderr string) (shell, curl, r string) {
	t.Helper()
	_, rest, ok := strings.Cut(stderr, "Call it from any folder")
	if !ok {
		t.Fatalf("up printed no snippets:\n%s", stderr)
	}
	_, rest, _ = strings.Cut(rest, "\n\n")
	var blocks []string
	for _, b := range strings.SplitN(rest, "\n\n", 4)[:3] {
		var lines []string
		for _, l := range strings.Split(b, "\n") {
			lines = append(lines, strings.TrimPrefix(l, "  "))
		}
		blocks = append(blocks, strings.Join(lines, "\n"))
	}
	return blocks[0], blocks[1], blocks[2]
}

// TestSnippetsWorkAsPasted: the curl and httr2 calls `up` prints run
// verbatim in a fresh shell in another folder, with a PATH that has no
// plumbline on it; the studio's Keys tab shows the same text (the server
// writes both); down --stop-server stops the server up started.
func TestSnippetsWorkAsPasted(t *testing.T) {
	requireR(t, "plumber", "jsonlite", "randomForest", "httr2")
	dir := irisFolder(t)
	dd := newDataDir(t)
	up := runCLI(t, dd, dir, "up", ".", "--listen", "127.0.0.1:0")
	s := upServer(t, dd)
	if up.code != 0 {
		t.Fatalf("up: %s", up)
	}
	shell, curl, rcode := upSnippets(t, up.stderr)
	if !strings.HasPrefix(shell, `export KEY="$(`+binPath+" --data-dir "+dd) || !strings.HasPrefix(curl, "curl --cacert "+filepath.Join(dd, "tls", "ca.crt")) || !strings.HasPrefix(rcode, "library(httr2)") {
		t.Fatalf("snippets:\n%s\n\n%s\n\n%s", shell, curl, rcode)
	}

	elsewhere := t.TempDir()
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command("/bin/bash", "-e", "-c", script)
		cmd.Dir = elsewhere
		cmd.Env = []string{"HOME=" + elsewhere, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the pasted snippet failed: %v\n--- script:\n%s\n--- output:\n%s%s", err, script, out, stderr.String())
		}
		return string(out)
	}
	if _, err := exec.LookPath("plumbline"); err == nil {
		t.Logf("note: a plumbline is on this test's PATH; the snippets run with PATH=/usr/local/bin:/usr/bin:/bin")
	}
	if got := run(shell + "\n" + curl); strings.TrimSpace(got) != `{"species":["virginica"]}` {
		t.Errorf("curl snippet printed %q, want the prediction", got)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, "score.R"), []byte(rcode+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := run(shell + "\nRscript score.R"); !strings.Contains(got, `"virginica"`) {
		t.Errorf("httr2 snippet printed %q, want the prediction", got)
	}

	// The studio shows what up printed.
	req, _ := http.NewRequest("GET", s.state.URL+"/api/v1/endpoints/r-endpoint-iris/snippets", nil)
	req.Header.Set("Authorization", "Bearer "+s.adminToken(t))
	resp, err := s.httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var studio struct{ Shell, Curl, R string }
	if err := json.Unmarshal(b, &studio); err != nil {
		t.Fatalf("snippets API: %v: %s", err, b)
	}
	if studio.Shell != shell || studio.Curl != curl || studio.R != rcode {
		t.Errorf("the studio's snippets differ from up's:\n%+v", studio)
	}

	// The Studio line is a one-time sign-in link; Limits explains 429.
	for _, want := range []string{"/studio/#signin=", "&to=/endpoints/r-endpoint-iris", "past 2 in flight or queued, callers get 429", "max_concurrent_requests_per_instance"} {
		if !strings.Contains(up.stderr, want) {
			t.Errorf("up's output lacks %q", want)
		}
	}

	// plumbline stop: the server up started stops and takes its instances
	// with it (nothing left running behind the user's back); up brings
	// both back and the new snippets answer.
	if len(instanceProcs(dd)) == 0 {
		t.Fatal("no instance processes found while the deployment serves")
	}
	if stop := runCLI(t, dd, dir, "stop"); stop.code != 0 || !strings.Contains(stop.stderr, "Stopped") {
		t.Fatalf("stop: %s", stop)
	}
	if alive(s.state.PID) {
		t.Errorf("the server (pid %d) still runs after plumbline stop", s.state.PID)
	}
	if left := instanceProcs(dd); len(left) != 0 {
		t.Errorf("instance processes left running after plumbline stop: %v", left)
	}
	up = runCLI(t, dd, dir, "up", ".", "--listen", "127.0.0.1:0")
	if up.code != 0 {
		t.Fatalf("up after stop: %s", up)
	}
	s = upServer(t, dd)
	shell, curl, _ = upSnippets(t, up.stderr)
	if got := run(shell + "\n" + curl); strings.TrimSpace(got) != `{"species":["virginica"]}` {
		t.Errorf("after stop and up, the curl snippet printed %q, want the prediction", got)
	}

	// down --stop-server: the endpoint goes, then the server stops.
	down := runCLI(t, dd, dir, "down", ".", "--stop-server")
	if down.code != 0 || !strings.Contains(down.stderr, "Stopped") {
		t.Fatalf("down --stop-server: %s", down)
	}
	if alive(s.state.PID) {
		t.Errorf("the server (pid %d) still runs after down --stop-server", s.state.PID)
	}
	if again := runCLI(t, dd, dir, "stop"); again.code != 0 || !strings.Contains(again.stderr, "No plumbline server runs") {
		t.Errorf("stop with no server: %s", again)
	}
}

// TestStopStopsAForegroundServer: plumbline stop drains a serve started
// elsewhere, and down without --stop-server says the server keeps running.
func TestStopStopsAForegroundServer(t *testing.T) {
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "endpoint.yml"), "name: nothing-here\nauth_mode: key\n")
	writeFile(t, filepath.Join(dir, "deployment.yml"), "name: blue\n")
	down := s.cliIn(t, dir, "down", ".", "-f", "endpoint.yml")
	if down.code != 0 || !strings.Contains(down.stderr, fmt.Sprintf("The local plumbline server (pid %d) keeps running; stop it with: plumbline stop", s.pid())) {
		t.Errorf("down without --stop-server: %s", down)
	}
	stop := s.cli(t, "stop")
	if stop.code != 0 || !strings.Contains(stop.stderr, fmt.Sprintf("Stopping the plumbline server (pid %d", s.pid())) {
		t.Fatalf("stop: %s", stop)
	}
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("plumbline stop returned but the server still runs")
	}
}

// TestCrateChecksAndSampleRequest: the 106-byte crate (a function saved
// without its model) is flagged at model create; a deployment of it with a
// sample request is not Succeeded and gets no traffic; an update to it fails
// while the previous version keeps serving, and show says so.
func TestCrateChecksAndSampleRequest(t *testing.T) {
	requireR(t, "plumber", "jsonlite")
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := t.TempDir()
	cmd := exec.Command(rCheck.rscript, filepath.Join(repoRoot, "test", "e2e", "testdata", "ux", "make_crates.R"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_crates.R: %v\n%s", err, out)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "bad", "models", "crate.bin")); fi == nil || fi.Size() != 106 {
		t.Fatalf("bad crate: %v, want the 106-byte crate", fi)
	}
	copyTree(t, filepath.Join(repoRoot, "internal", "cli", "templates", "r", "src"), filepath.Join(dir, "src"))
	writeFile(t, filepath.Join(dir, "sample_request.json"), `{"wt": [2.62, 3.44], "hp": [110, 175]}`)
	writeFile(t, filepath.Join(dir, "endpoint.yml"), "name: cars\nauth_mode: key\n")
	dep := func(name, model string) string {
		return fmt.Sprintf(`name: %s
endpoint_name: cars
model: %s
code_configuration: {code: ./src, scoring_script: plumber.R}
environment:
  image: rstudio/plumber:latest
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS2_v2
instance_count: 1
plumbline:
  sample_request: sample_request.json
`, name, model)
	}
	writeFile(t, filepath.Join(dir, "blue.yml"), dep("blue", "azureml:cars-crate:1"))
	writeFile(t, filepath.Join(dir, "green.yml"), dep("green", "azureml:cars-crate:2"))

	good := s.mustIn(t, dir, "model", "create", "--name", "cars-crate", "--path", "good/models")
	if strings.Contains(good.stderr, "warning") {
		t.Errorf("a crate that captured its model was warned about:\n%s", good.stderr)
	}
	bad := s.mustIn(t, dir, "model", "create", "--name", "cars-crate", "--path", "bad/models")
	for _, want := range []string{"warning: models/crate.bin holds a function defined in the global environment", "model will not exist when it is called", "carrier::crate(", "local({"} {
		if !strings.Contains(bad.stderr, want) {
			t.Errorf("model create of the 106-byte crate lacks %q:\n%s", want, bad.stderr)
		}
	}

	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "blue.yml", "--all-traffic")
	c := s.httpClient(t)
	uri := s.endpoint(t, "cars").ScoringURI
	key := s.keys(t, "cars").PrimaryKey
	if r := score(t, c, uri, key, "", `{"wt": [2.62], "hp": [110]}`); r.status != 200 || r.deployment != "blue" {
		t.Fatalf("blue: %d %s", r.status, r.body)
	}

	// green: the bad crate, with a sample request, and --all-traffic.
	green := s.cliIn(t, dir, "online-deployment", "create", "-f", "green.yml", "--all-traffic")
	if green.code != 1 {
		t.Fatalf("creating green with the bad crate: want exit 1\n%s", green)
	}
	g := s.deployment(t, "cars", "green")
	if g.ProvisioningState != "Failed" || !strings.Contains(g.Reason, "did not answer the sample request (plumbline.sample_request) with a 2xx") || !strings.Contains(g.Reason, "object 'model' not found") {
		t.Errorf("green: %s; want Failed because its sample request answered R's error", g)
	}
	if ep := s.endpoint(t, "cars"); ep.Traffic["blue"] != 100 || ep.Traffic["green"] != 0 {
		t.Errorf("traffic %v: it must never move to green", ep.Traffic)
	}
	evs := s.events(t, "cars", "green")
	found := false
	for _, e := range evs {
		found = found || (e.Reason == "Check" && strings.Contains(e.Message, "global environment"))
	}
	if !found {
		t.Errorf("green's events have no crate warning before start: %+v", evs)
	}

	// blue updated to the bad crate: Failed, version 1 keeps serving.
	upd := s.cliIn(t, dir, "online-deployment", "update", "-f", "blue.yml", "--set", "model=azureml:cars-crate:2")
	if upd.code != 1 {
		t.Fatalf("updating blue to the bad crate: want exit 1\n%s", upd)
	}
	var shown struct {
		ProvisioningState string `json:"provisioning_state"`
		Serving           struct {
			Version int
			Model   string
			Summary string
		}
	}
	s.mustJSON(t, &shown, "online-deployment", "show", "--name", "blue", "--endpoint-name", "cars")
	if shown.ProvisioningState != "Failed" || shown.Serving.Version != 1 || shown.Serving.Summary != "Failed — still serving version 1 (model cars-crate:1)" {
		t.Errorf("show after the failed update: %+v", shown)
	}
	if table := s.must(t, "online-deployment", "list", "--endpoint-name", "cars", "-o", "table").stdout; !strings.Contains(table, "Failed — still serving version 1") {
		t.Errorf("list's table does not say blue still serves version 1:\n%s", table)
	}
	if r := score(t, c, uri, key, "", `{"wt": [2.62], "hp": [110]}`); r.status != 200 || r.deployment != "blue" {
		t.Errorf("after the failed update: %d %s, want blue's version 1 answering", r.status, r.body)
	}
}
