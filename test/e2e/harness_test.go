package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/plumbline/plumbline/test/testenv"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliTimeout bounds one CLI command; deployment creation waits for R.
const cliTimeout = 3 * time.Minute

type logBuffer = testenv.LogBuffer

var (
	cleanEnv   = testenv.CleanEnv
	newDataDir = testenv.NewDataDir
	copyDir    = testenv.CopyDir
)

// serverState mirrors <data-dir>/server.json.
type serverState struct {
	URL        string `json:"url"`
	ScoringURL string `json:"scoring_url"`
	PID        int    `json:"pid"`
	CACert     string `json:"ca_cert"`
}

// server is one `plumbline serve` process.
type server struct {
	dataDir string
	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{}
	waitErr error // set before exited is closed
	state   serverState
}

// startServer runs `plumbline serve --listen 127.0.0.1:0 --data-dir dd` and
// waits until it has written server.json. The server is stopped with
// SIGTERM when the test ends; its output is printed if the test failed.
func startServer(t *testing.T, dd string, extra ...string) *server {
	t.Helper()
	requireBinary(t)
	s := &server{dataDir: dd, log: &logBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binPath, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dd, "--on-exit", "stop"}, extra...)...)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start plumbline serve: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("plumbline serve (pid %d, data dir %s) output:\n%s", s.cmd.Process.Pid, dd, s.log.Tail(48<<10))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dd, "server.json"))
		if err == nil {
			var st serverState
			// A server killed with -9 leaves its server.json behind: wait
			// for the one this process writes.
			if json.Unmarshal(b, &st) == nil && st.PID == s.cmd.Process.Pid {
				s.state = st
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("plumbline serve exited before it was ready (%v):\n%s", s.waitErr, s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("plumbline serve did not write %s/server.json within 30s:\n%s", dd, s.log.String())
		}
	}
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM (drain, stop instances) and waits; after 45 s it
// sends SIGKILL.
func (s *server) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(45 * time.Second):
		t.Errorf("plumbline serve (pid %d) did not stop within 45s of SIGTERM; killing it", s.pid())
		_ = s.cmd.Process.Kill()
		<-s.exited
		return
	}
	// A graceful stop stops the instances too (the next start brings them
	// back from the store).
	deadline := time.Now().Add(5 * time.Second)
	for left := instanceProcs(s.dataDir); len(left) > 0; left = instanceProcs(s.dataDir) {
		if time.Now().After(deadline) {
			t.Errorf("plumbline serve stopped with SIGTERM but left instance processes running: %v", left)
			for pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 kills the server with SIGKILL, as a crash or the OOM killer would.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 plumbline serve: %v", err)
	}
	<-s.exited
}

// result is what one CLI command did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("plumbline %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// stderrLines are the non-empty lines of stderr.
func (r result) stderrLines() []string {
	var out []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// runCLI runs the binary with args in dir ("" = this package's folder), with
// PLUMBLINE_DATA_DIR=dd so that it finds the server of that data dir.
func runCLI(t *testing.T, dd, dir string, args ...string) result {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv("PLUMBLINE_DATA_DIR=" + dd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

// cli runs a command against s from this package's folder.
func (s *server) cli(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, s.dataDir, "", args...)
}

// cliIn runs a command against s from dir (relative paths resolve there).
func (s *server) cliIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return runCLI(t, s.dataDir, dir, args...)
}

// must runs a command and fails the test unless it exits 0.
func (s *server) must(t *testing.T, args ...string) result {
	t.Helper()
	return s.mustIn(t, "", args...)
}

func (s *server) mustIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := runCLI(t, s.dataDir, dir, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0, got %d:\n%s", r.code, r)
	}
	return r
}

// mustJSON runs a command with -o json and decodes its stdout into v.
func (s *server) mustJSON(t *testing.T, v any, args ...string) result {
	t.Helper()
	r := s.must(t, append(args, "-o", "json")...)
	decodeJSON(t, r, v)
	return r
}

func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not the JSON expected (%v):\n%s", err, r)
	}
}

// waitFor polls cond every 200 ms until it is true or timeout passes; cond
// returns a description of what it saw, for the failure message.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, saw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Control-plane views, decoded from the CLI's JSON.

type endpointView struct {
	Name              string         `json:"name"`
	AuthMode          string         `json:"auth_mode"`
	Traffic           map[string]int `json:"traffic"`
	MirrorTraffic     map[string]int `json:"mirror_traffic"`
	ProvisioningState string         `json:"provisioning_state"`
	ScoringURI        string         `json:"scoring_uri"`
	CreatedAt         string         `json:"created_at"`
}

type instanceView struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Ready    bool   `json:"ready"`
	Restarts int    `json:"restarts"`
}

type deploymentView struct {
	Name              string         `json:"name"`
	EndpointName      string         `json:"endpoint_name"`
	ProvisioningState string         `json:"provisioning_state"`
	Reason            string         `json:"reason"`
	Model             string         `json:"model"`
	CodeDigest        string         `json:"code_digest"`
	ModelDigest       string         `json:"model_digest"`
	Runtime           string         `json:"runtime"`
	InstanceCount     int            `json:"instance_count"`
	Instances         []instanceView `json:"instances"`
}

func (d deploymentView) ready() int {
	n := 0
	for _, in := range d.Instances {
		if in.Ready {
			n++
		}
	}
	return n
}

func (d deploymentView) String() string {
	var ins []string
	for _, in := range d.Instances {
		ins = append(ins, fmt.Sprintf("%s:%s ready=%v restarts=%d", in.Name, in.State, in.Ready, in.Restarts))
	}
	return fmt.Sprintf("%s/%s %s [%s] %s", d.EndpointName, d.Name, d.ProvisioningState, strings.Join(ins, ", "), d.Reason)
}

type eventView struct {
	ID       int64  `json:"id"`
	Instance string `json:"instance"`
	Type     string `json:"type"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
}

type keysView struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

func (s *server) endpoint(t *testing.T, name string) endpointView {
	t.Helper()
	var e endpointView
	s.mustJSON(t, &e, "online-endpoint", "show", "--name", name)
	return e
}

func (s *server) deployment(t *testing.T, endpoint, name string) deploymentView {
	t.Helper()
	var d deploymentView
	s.mustJSON(t, &d, "online-deployment", "show", "--name", name, "--endpoint-name", endpoint)
	return d
}

func (s *server) events(t *testing.T, endpoint, name string) []eventView {
	t.Helper()
	var evs []eventView
	s.mustJSON(t, &evs, "online-deployment", "events", "--name", name, "--endpoint-name", endpoint)
	return evs
}

func (s *server) keys(t *testing.T, endpoint string) keysView {
	t.Helper()
	var k keysView
	s.mustJSON(t, &k, "online-endpoint", "get-credentials", "--name", endpoint)
	if k.PrimaryKey == "" || k.SecondaryKey == "" {
		t.Fatalf("get-credentials of %s: want both keys, got %+v", endpoint, k)
	}
	return k
}

// waitDeploymentReady waits until the deployment is Succeeded with n ready
// instances.
func (s *server) waitDeploymentReady(t *testing.T, endpoint, name string, n int, timeout time.Duration) deploymentView {
	t.Helper()
	var d deploymentView
	waitFor(t, timeout, fmt.Sprintf("%s/%s Succeeded with %d ready instances", endpoint, name, n), func() (bool, string) {
		d = s.deployment(t, endpoint, name)
		return d.ProvisioningState == "Succeeded" && d.ready() == n && len(d.Instances) == n, d.String()
	})
	return d
}

// Files the driver writes.

// instanceRecord is the part of the process driver's per-instance record
// (<data-dir>/instances/…/record.json) the tests read.
type instanceRecord struct {
	ID         string `json:"id"`
	PID        int    `json:"pid"`
	Port       int    `json:"port"`
	Endpoint   string `json:"endpoint"`
	Deployment string `json:"deployment"`
}

// records lists the instance records under the data dir.
func records(t *testing.T, dd string) []instanceRecord {
	t.Helper()
	var out []instanceRecord
	filepath.WalkDir(filepath.Join(dd, "instances"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "record.json" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var r instanceRecord
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
		return nil
	})
	return out
}

// record finds the record of one running instance (e.g. blue-0).
func record(t *testing.T, dd, endpoint, deployment, instance string) instanceRecord {
	t.Helper()
	r, ok := findRecord(t, dd, endpoint, deployment, instance)
	if !ok {
		t.Fatalf("no driver record for instance %s of %s/%s under %s/instances", instance, endpoint, deployment, dd)
	}
	return r
}

// findRecord is record for an instance that may be between two processes
// (the driver removes the record of a stopped instance).
func findRecord(t *testing.T, dd, endpoint, deployment, instance string) (instanceRecord, bool) {
	t.Helper()
	for _, r := range records(t, dd) {
		if r.Endpoint == endpoint && r.Deployment == deployment && (r.ID == instance || strings.HasSuffix(r.ID, "."+instance)) {
			return r, true
		}
	}
	return instanceRecord{}, false
}

// Processes.

// instanceProcs returns the live processes (pid → AML_APP_ROOT) whose
// environment says they are instances run from dd: the process driver gives
// every instance AML_APP_ROOT inside the data dir's cache.
func instanceProcs(dd string) map[int]string {
	out := map[int]string{}
	prefix := "AML_APP_ROOT=" + dd + string(filepath.Separator)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || procState(pid) == "Z" {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if strings.HasPrefix(kv, prefix) {
				out[pid] = strings.TrimPrefix(kv, "AML_APP_ROOT=")
			}
		}
	}
	return out
}

// instanceLeaders is instanceProcs without the processes an instance
// started itself (the lean R runtime's R session and workers): one process
// per instance, the one the process driver started.
func instanceLeaders(dd string) map[int]string {
	all := instanceProcs(dd)
	out := map[int]string{}
	for pid, root := range all {
		if _, child := all[parentPID(pid)]; !child {
			out[pid] = root
		}
	}
	return out
}

// parentPID is pid's parent (0 if gone).
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procState is the state letter of /proc/<pid>/stat ("" if gone).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	st := procState(pid)
	return st != "" && st != "Z"
}

// rDescendants lists the live R processes descending from pid: instances,
// and anything else the server ran with R (package checks).
func rDescendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var out []int
	for p := range parent {
		isDesc := false
		for q, n := parent[p], 0; q > 1 && n < 64; q, n = parent[q], n+1 {
			if q == pid {
				isDesc = true
				break
			}
		}
		if !isDesc {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		switch {
		case filepath.Base(exe) == "R", filepath.Base(exe) == "Rscript":
		case strings.TrimSpace(string(comm)) == "R", strings.TrimSpace(string(comm)) == "Rscript":
		default:
			continue
		}
		{
			out = append(out, p)
		}
	}
	return out
}

// HTTP.

// caPool is the pool holding the data dir's local CA.
func caPool(t *testing.T, dd string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dd, "tls", "ca.crt"))
	if err != nil {
		t.Fatalf("read the local CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s/tls/ca.crt holds no PEM certificate", dd)
	}
	return pool
}

// httpClient trusts only the data dir's local CA.
func (s *server) httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: caPool(t, s.dataDir), MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// reply is one scoring answer.
type reply struct {
	status     int
	deployment string // azureml-model-deployment
	body       string
	header     http.Header
}

// score POSTs body to uri with an optional bearer secret and deployment
// header, and fails the test if there is no HTTP answer.
func score(t *testing.T, c *http.Client, uri, secret, deployment, body string) reply {
	t.Helper()
	r, err := tryScore(c, uri, secret, deployment, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scoreRouted is score for a request sent just after an instance became
// ready: the gateway's routing table follows the reconciler within
// milliseconds, so a 503 (no ready instance yet) is retried for up to 3 s.
func scoreRouted(t *testing.T, c *http.Client, uri, secret, deployment, body string) reply {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := score(t, c, uri, secret, deployment, body)
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryScore is score for goroutines other than the test's.
func tryScore(c *http.Client, uri, secret, deployment, body string) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if deployment != "" {
		req.Header.Set("azureml-model-deployment", deployment)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("POST %s: %w", uri, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("POST %s: read the answer: %w", uri, err)
	}
	return reply{status: resp.StatusCode, deployment: resp.Header.Get("azureml-model-deployment"), body: strings.TrimSpace(string(b)), header: resp.Header}, nil
}

// adminToken is the token the CLI on this machine uses.
func (s *server) adminToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("read admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// metrics GETs /metrics with the admin token.
func (s *server) metrics(t *testing.T, c *http.Client) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.state.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.adminToken(t))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics with the admin token: got %s, want 200 OK: %s", resp.Status, b)
	}
	return string(b)
}

// metricValue sums the samples of a metric whose labels include every
// key="value" pair given.
func metricValue(text, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// Files.

// copyTree copies the regular files and folders of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := copyDir(src, dst); err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
