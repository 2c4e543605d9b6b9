package rworker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/plumber"
)

// requireR returns Rscript's path, or skips the test when R or a package is
// missing (-short skips too). With PLUMBLINE_CI=1, which CI sets after
// installing everything, a missing piece fails the test instead.
func requireR(t *testing.T, pkgs ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not starting R")
	}
	path, err := exec.LookPath("Rscript")
	why := ""
	if err != nil {
		why = "Rscript is not installed (apt-get install r-base-core r-cran-plumber)"
	} else {
		missing, err := plumber.MissingPackages(context.Background(), path, append([]string{"plumber", "jsonlite"}, pkgs...))
		switch {
		case err != nil:
			why = "cannot ask R for its packages: " + err.Error()
		case len(missing) > 0:
			why = "R packages missing: " + plumber.InstallHint(missing)
		}
	}
	if why != "" {
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatal("PLUMBLINE_CI=1 and an R test would be skipped: " + why)
		}
		t.Skip(why)
	}
	return path
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// app is a plumber API to serve: the container contract's folders.
type app struct {
	codeDir  string // AML_APP_ROOT
	entry    string // AZUREML_ENTRY_SCRIPT
	modelDir string // AZUREML_MODEL_DIR ("" for none)
	extraEnv []string
}

func (a app) env() []string {
	codeDir, _ := filepath.Abs(a.codeDir)
	env := append(os.Environ(), "AML_APP_ROOT="+codeDir, "AZUREML_ENTRY_SCRIPT="+a.entry)
	if a.modelDir != "" {
		env = append(env, "AZUREML_MODEL_DIR="+a.modelDir)
	}
	return append(env, a.extraEnv...)
}

// lean is a supervisor started by a test.
type lean struct {
	s       *Supervisor
	url     string
	log     *syncBuffer
	stopped chan struct{} // closed when Run has returned, with err set
	err     error
	cancel  context.CancelFunc // stops it (Run returns, stopped closes)
}

// startLean runs a supervisor for a in this test process and waits until
// its readiness probe passes. cfg's Listen and Dir are filled in.
func startLean(t *testing.T, a app, cfg Config) *lean {
	t.Helper()
	l := launchLean(t, a, cfg)
	waitReady(t, l.url+l.s.cfg.ReadinessPath, l.stopped, func() error { return l.err }, l.log)
	return l
}

// launchLean runs a supervisor for a in this test process; it is stopped
// when the test ends.
func launchLean(t *testing.T, a app, cfg Config) *lean {
	t.Helper()
	rscript := requireR(t)
	cfg.Listen = "127.0.0.1:" + freePort(t)
	cfg.Dir = filepath.Join(t.TempDir(), "rworker")
	if cfg.Rscript == "" {
		cfg.Rscript = rscript
	}
	if cfg.ReadinessPath == "" {
		cfg.LivenessPath, cfg.ReadinessPath = OwnLivenessPath, OwnReadinessPath
	}
	log := &syncBuffer{}
	cfg.Logger = newTestLogger(log)
	s, err := New(cfg, log, log)
	if err != nil {
		t.Fatal(err)
	}
	s.env = a.env()
	s.workDir, _ = filepath.Abs(a.codeDir)
	ctx, cancel := context.WithCancel(context.Background())
	l := &lean{s: s, url: "http://" + cfg.Listen, log: log, stopped: make(chan struct{}), cancel: cancel}
	go func() {
		l.err = s.Run(ctx)
		close(l.stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.stopped:
		case <-time.After(30 * time.Second):
			t.Errorf("supervisor did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("supervisor log:\n%s", log.String())
		}
	})
	return l
}

// waitReady polls url until it answers 200, failing when the server stops
// first (done closes; errOf says why).
func waitReady(t *testing.T, url string, done <-chan struct{}, errOf func() error, log *syncBuffer) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("stopped before ready: %v\n%s", errOf(), log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 90 s (last: %v)\n%s", url, err, log)
		}
	}
}

// startPlumber runs a on plumber's own server, exactly as the process
// driver's launcher does, and waits until it answers.
func startPlumber(t *testing.T, a app, probe string) string {
	t.Helper()
	rscript := requireR(t)
	port := freePort(t)
	cmd := exec.Command(rscript, "-e", plumber.Launcher("127.0.0.1"))
	cmd.Env = append(a.env(), "PORT="+port)
	cmd.Dir, _ = filepath.Abs(a.codeDir)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("plumber log:\n%s", log.String())
		}
	})
	url := "http://127.0.0.1:" + port
	waitReady(t, url+probe, done, func() error { return waitErr }, log)
	return url
}

// call sends one request with a fresh connection (plumber's server stalls
// on kept-alive connections; see internal/gateway/transport.go).
type call struct {
	Method string
	Path   string
	Header map[string]string
	Body   string
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 60 * time.Second}

func do(t *testing.T, base string, c call) answer {
	t.Helper()
	a, err := doErr(context.Background(), base, c)
	if err != nil {
		t.Fatalf("%s %s: %v", c.Method, c.Path, err)
	}
	return a
}

func doErr(ctx context.Context, base string, c call) (answer, error) {
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+c.Path, body)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("User-Agent", "plumbline-test")
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	res, err := noKeepAlive.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// status reads the supervisor's control socket.
func (l *lean) status(t *testing.T) probeState {
	t.Helper()
	var st probeState
	body := l.control(t, http.MethodGet, "/status")
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status: %v: %s", err, body)
	}
	return st
}

func (l *lean) control(t *testing.T, method, path string) []byte {
	t.Helper()
	sock := ControlSocket(l.s.cfg.Dir)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 60 * time.Second}
	req, _ := http.NewRequest(method, "http://rworker"+path, nil)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("control %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("control %s %s: %d %s", method, path, res.StatusCode, b)
	}
	return b
}

// eventually polls cond every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trainIris trains the iris example's crate into a temporary model folder
// (…/models/crate.bin) and returns the folder for AZUREML_MODEL_DIR.
func trainIris(t *testing.T) string {
	t.Helper()
	rscript := requireR(t, "randomForest")
	dir := t.TempDir()
	out, err := exec.Command(rscript, "../../examples/r-iris/train.R", filepath.Join(dir, "models")).CombinedOutput()
	if err != nil {
		t.Fatalf("train the iris crate: %v\n%s", err, out)
	}
	return dir
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
