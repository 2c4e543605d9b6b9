package browser

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/plumbline/plumbline/test/testenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	state   serverState
}

// startServer runs `plumbline serve --listen 127.0.0.1:0 --data-dir dd`,
// waits for its server.json, and stops it with SIGTERM when the test ends.
func startServer(t *testing.T, dd string) *server {
	t.Helper()
	s := &server{dataDir: dd, log: &logBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binPath, "serve", "--listen", "127.0.0.1:0", "--data-dir", dd, "--on-exit", "stop")
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start plumbline serve: %v", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("plumbline serve output:\n%s", s.log.Tail(32<<10))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dd, "server.json"))
		if err == nil && json.Unmarshal(b, &s.state) == nil && s.state.PID == s.cmd.Process.Pid {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("plumbline serve exited before it was ready:\n%s", s.log.Tail(8<<10))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("plumbline serve did not write %s/server.json within 30s:\n%s", dd, s.log.Tail(8<<10))
		}
	}
}

// stop sends SIGTERM (drain, stop instances) and waits; after 45 s, SIGKILL.
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
		t.Errorf("plumbline serve (pid %d) did not stop within 45s of SIGTERM; killing it", s.cmd.Process.Pid)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// adminToken is the token the studio signs in with.
func (s *server) adminToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("read the admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// cliIn runs the CLI against s from dir and fails the test unless it exits 0.
func (s *server) cliIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv("PLUMBLINE_DATA_DIR=" + s.dataDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("plumbline %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// cliJSON runs a command with -o json and decodes its output into v.
func (s *server) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := s.cliIn(t, "", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("plumbline %s -o json: not the JSON expected (%v):\n%s", strings.Join(args, " "), err, out)
	}
}

// httpClient trusts the server's local CA.
func (s *server) httpClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.state.CACert)
	if err != nil {
		t.Fatalf("read the server's CA certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", s.state.CACert)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// scoreLoop scores body against the endpoint every interval until ctx
// ends, so that the metrics page has something to draw. It returns how
// many requests were answered 200 and the first other outcome, if any.
func (s *server) scoreLoop(ctx context.Context, c *http.Client, endpoint, key, body string, interval time.Duration) (ok int, firstErr error) {
	url := s.state.ScoringURL + "/endpoints/" + endpoint + "/score"
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ok, firstErr
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() == nil && firstErr == nil {
				firstErr = err
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok++
		} else if firstErr == nil {
			firstErr = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
	}
}

// copyDir copies a directory tree of regular files.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := testenv.CopyDir(src, dst); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// runIn runs a program in dir and fails the test unless it exits 0.
func runIn(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
