// Package serve runs the built `plumbline serve` binary on a private data
// directory and drives it the way a user does: its CLI for every change
// (endpoints, deployments, traffic, scaling) and its public Go API client
// only for reads (keys, readiness). It finds each instance's process and
// port in the process driver's records, for the benchmarks that measure an
// instance's memory or ask the backend itself how many requests it saw.
//
// It imports plumbline's public api package, internal/datadir (the data dir
// layout) and bench/internal/proc; never the server's internals.
package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver/process"
)

// Server is one running `plumbline serve`.
type Server struct {
	Name     string
	Bin      string
	DataDir  string
	Insecure bool
	Proc     *proc.Proc
	// Port is where it listens on 127.0.0.1 (API and gateway).
	Port int
	// API is an admin client for reads.
	API *api.Client
	// RootCAs trust the server's local CA (nil with Insecure); CACert is
	// that CA's certificate file.
	RootCAs *x509.CertPool
	CACert  string
}

// Start runs `plumbline serve --listen 127.0.0.1:0 --data-dir dataDir`
// (plain HTTP with insecure, then the extra flags) under g and waits until
// it serves.
func Start(ctx context.Context, g *proc.Group, name, bin, dataDir string, insecure bool, extra ...string) (*Server, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--on-exit", "stop"}
	if insecure {
		args = append(args, "--insecure-http")
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	s := &Server{Name: name, Bin: bin, DataDir: dataDir, Insecure: insecure}
	p, err := g.Start(name, cmd, proc.Options{
		// SIGTERM drains and stops the instances; it may take a while.
		StopSignal:  syscall.SIGTERM,
		Grace:       45 * time.Second,
		DeathSignal: syscall.SIGTERM,
		AfterStop: func() {
			// If the server had to be killed, its instances (each in a
			// process group of its own) are still running: stop those this
			// server started, matched by pid and start time.
			for _, in := range s.instancesOf(0) {
				proc.KillGroupIfSame(in.PID, in.StartTime)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	s.Proc = p
	dd := &datadir.Dir{Root: dataDir}
	deadline := time.Now().Add(30 * time.Second)
	var st datadir.ServerState
	for {
		st, err = dd.ReadServerState()
		if err == nil && st.PID == p.Pid() {
			break
		}
		select {
		case <-p.Exited():
			return nil, proc.ExitError(p)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not write %s within 30 s:\n%s", name, dd.ServerStatePath(), p.LogTail(4000))
		}
	}
	u, err := url.Parse(st.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: server.json url %q: %w", name, st.URL, err)
	}
	if s.Port, err = strconv.Atoi(u.Port()); err != nil {
		return nil, fmt.Errorf("%s: server.json url %q has no port", name, st.URL)
	}
	if !insecure {
		pem, err := os.ReadFile(st.CACert)
		if err != nil {
			return nil, fmt.Errorf("%s: CA certificate: %w", name, err)
		}
		s.RootCAs = x509.NewCertPool()
		s.RootCAs.AppendCertsFromPEM(pem)
		s.CACert = st.CACert
	}
	token, err := os.ReadFile(dd.AdminTokenPath())
	if err != nil {
		return nil, fmt.Errorf("%s: admin token: %w", name, err)
	}
	hc := &http.Client{Transport: load.NewTransport(s.ClientOptions(true)), Timeout: 30 * time.Second}
	s.API, err = api.NewClient(s.BaseURL(), strings.TrimSpace(string(token)), hc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// BaseURL is the server's base URL on 127.0.0.1 (the certificate also
// names localhost; ClientOptions sets the TLS server name).
func (s *Server) BaseURL() string {
	scheme := "https"
	if s.Insecure {
		scheme = "http"
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(s.Port)
}

// ScoringURL is the scoring URL of endpoint.
func (s *Server) ScoringURL(endpoint string) string {
	return s.BaseURL() + "/endpoints/" + endpoint + "/score"
}

// ClientOptions are load-generator options that trust this server.
func (s *Server) ClientOptions(keepAlive bool) load.ClientOptions {
	return load.ClientOptions{KeepAlive: keepAlive, RootCAs: s.RootCAs, ServerName: "localhost"}
}

// TLSConfig is a client TLS configuration that trusts this server.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// CLI runs `plumbline <args>` against this server and returns its stdout;
// a non-zero exit is an error carrying stderr.
func (s *Server) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Bin, append([]string{"--data-dir", s.DataDir}, args...)...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("plumbline %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Key returns the endpoint's primary key.
func (s *Server) Key(ctx context.Context, endpoint string) (string, error) {
	k, err := s.API.ListKeys(ctx, endpoint)
	if err != nil {
		return "", fmt.Errorf("keys of %s: %w", endpoint, err)
	}
	return k.PrimaryKey, nil
}

// WaitReady waits until the deployment has at least n ready instances.
func (s *Server) WaitReady(ctx context.Context, endpoint, deployment string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := s.API.GetDeployment(ctx, endpoint, deployment)
		if err == nil && Ready(d) >= n {
			return nil
		}
		if err == nil && d.ProvisioningState == api.StateFailed {
			return fmt.Errorf("deployment %s/%s Failed: %s", endpoint, deployment, d.Reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s/%s: not %d ready instances within %s (last error %v)", endpoint, deployment, n, timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Ready counts a deployment's ready instances.
func Ready(d *api.Deployment) int {
	n := 0
	for _, in := range d.Instances {
		if in.Ready {
			n++
		}
	}
	return n
}

// Instance is a live instance process of this server, from the process
// driver's record.
type Instance struct {
	ID         string `json:"id"`
	PID        int    `json:"pid"`
	StartTime  uint64 `json:"start_time"`
	Port       int    `json:"port"`
	ServerPID  int    `json:"server_pid"`
	Endpoint   string `json:"endpoint"`
	Deployment string `json:"deployment"`
	Runtime    string `json:"runtime"`
	// Dir is the instance's folder in the process driver's state;
	// RWorkerDir the lean R runtime's run folder, when it runs on it.
	Dir        string `json:"-"`
	RWorkerDir string `json:"-"`
}

// Instances lists the live instances of endpoint/deployment ("" matches
// any).
func (s *Server) Instances(endpoint, deployment string) []Instance {
	var out []Instance
	for _, in := range s.instancesOf(s.Proc.Pid()) {
		if (endpoint == "" || in.Endpoint == endpoint) && (deployment == "" || in.Deployment == deployment) {
			out = append(out, in)
		}
	}
	return out
}

// instancesOf reads the records of live instances started by serverPID
// (0: any server of this data dir).
func (s *Server) instancesOf(serverPID int) []Instance {
	var out []Instance
	root := (&datadir.Dir{Root: s.DataDir}).InstancesDir()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "record.json" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var in Instance
		if json.Unmarshal(b, &in) != nil || in.PID <= 0 {
			return nil
		}
		if serverPID != 0 && in.ServerPID != serverPID {
			return nil
		}
		in.Dir = filepath.Dir(p)
		in.RWorkerDir = process.RWorkerDir(root, in.ID)
		if st, err := proc.ReadStat(in.PID); err != nil || st.StartTime != in.StartTime || st.State == "Z" {
			return nil
		}
		out = append(out, in)
		return nil
	})
	return out
}

// Version returns `plumbline --version`.
func Version(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// cleanEnv is the harness's environment without PLUMBLINE_* variables, so
// nothing from the caller's shell points the binary elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUMBLINE_") {
			env = append(env, kv)
		}
	}
	return env
}

// Metric returns the value of an unlabelled metric from the server's
// /metrics (read with the admin token), or -1 if it cannot.
func (s *Server) Metric(ctx context.Context, name string) float64 {
	b, err := s.Scrape(ctx)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(b, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// Scrape returns the server's /metrics, read with the admin token.
func (s *Server) Scrape(ctx context.Context) (string, error) {
	token, err := os.ReadFile((&datadir.Dir{Root: s.DataDir}).AdminTokenPath())
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", s.BaseURL()+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	tr := load.NewTransport(s.ClientOptions(false))
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", res.Status)
	}
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
