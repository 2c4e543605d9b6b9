// Package containers drives the built plumbline binary with the docker
// driver against a real container engine (Podman's Docker API on CI): the
// seed's folder built and scored in a container, a non-R custom container,
// failing builds, a container killed, the server killed and its containers
// re-adopted, the memory limit read from the container's cgroup, and a
// registered environment. The engine comes from internal/driver/docker/
// dockertest, which also removes every container a test's server started,
// passed or failed.
package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver/docker/dockertest"
	"github.com/plumbline/plumbline/test/testenv"
)

var (
	binPath  string
	repoRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "containers:", err)
		return 1
	}
	repoRoot = root
	if testing.Short() || runtime.GOOS != "linux" {
		return m.Run() // every test skips
	}
	bin, cleanup, err := testenv.Binary(repoRoot, "plumbline-containers-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "containers:", err)
		return 1
	}
	defer cleanup()
	binPath = bin
	return m.Run()
}

// server is `plumbline serve --driver docker` on a private data dir whose
// server id is a test owner, so its containers are removed after the test.
type server struct {
	t       *testing.T
	dataDir string
	host    string
	owner   string
	cmd     *exec.Cmd
	log     *testenv.LogBuffer
	exited  chan struct{}
}

// newServer prepares a data dir and starts a server on it.
func newServer(t *testing.T) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("container tests start a container engine's containers; not with -short")
	}
	if binPath == "" {
		t.Skip("the container tests need Linux")
	}
	s := &server{t: t, host: dockertest.Host(t), owner: dockertest.Owner(t), dataDir: testenv.NewDataDir(t)}
	os.Chmod(s.dataDir, 0o700)
	if err := os.WriteFile(filepath.Join(s.dataDir, "server-id"), []byte(s.owner+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	return s
}

// start runs the server and waits until it has written server.json.
func (s *server) start() {
	t := s.t
	t.Helper()
	s.log, s.exited = &testenv.LogBuffer{}, make(chan struct{})
	s.cmd = exec.Command(binPath, "serve", "--listen", "127.0.0.1:0", "--data-dir", s.dataDir, "--driver", "docker", "--docker-host", s.host)
	s.cmd.Env = testenv.CleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, log, exited := s.cmd, s.log, s.exited
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("plumbline serve (pid %d) output:\n%s", cmd.Process.Pid, log.Tail(32<<10))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			PID int `json:"pid"`
		}
		if b, err := os.ReadFile(filepath.Join(s.dataDir, "server.json")); err == nil && json.Unmarshal(b, &st) == nil && st.PID == cmd.Process.Pid {
			return
		}
		select {
		case <-exited:
			t.Fatalf("plumbline serve exited before it was ready:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("plumbline serve did not start within 30s:\n%s", log.String())
		}
	}
}

// kill9 kills the server as a crash would.
func (s *server) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// result is one CLI command's outcome.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("plumbline %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs the binary against s in dir ("" = this folder).
func (s *server) cli(dir string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = testenv.CleanEnv("PLUMBLINE_DATA_DIR=" + s.dataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		s.t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

// must runs a command that must succeed.
func (s *server) must(dir string, args ...string) result {
	s.t.Helper()
	r := s.cli(dir, args...)
	if r.code != 0 {
		s.t.Fatalf("want exit 0:\n%s", r)
	}
	return r
}

// deployment is what `online-deployment show -o json` says.
type deployment struct {
	ProvisioningState string `json:"provisioning_state"`
	Reason            string `json:"reason"`
	Instances         []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Ready    bool   `json:"ready"`
		Restarts int    `json:"restarts"`
	} `json:"instances"`
}

func (s *server) show(endpoint, name string) deployment {
	s.t.Helper()
	r := s.must("", "online-deployment", "show", "-e", endpoint, "-n", name, "-o", "json")
	var d deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		s.t.Fatalf("show: %v\n%s", err, r)
	}
	return d
}

// events is the deployment's event log as "Reason: message" lines.
func (s *server) events(endpoint, name string) string {
	s.t.Helper()
	r := s.must("", "online-deployment", "events", "-e", endpoint, "-n", name, "--limit", "500", "-o", "json")
	var evs []struct {
		Instance string `json:"instance"`
		Reason   string `json:"reason"`
		Message  string `json:"message"`
	}
	json.Unmarshal([]byte(r.stdout), &evs)
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s: %s\n", e.Instance, e.Reason, e.Message)
	}
	return b.String()
}

// waitFor polls cond until it holds or timeout passes.
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
		time.Sleep(250 * time.Millisecond)
	}
}

// copyExample copies examples/<name> into a fresh folder.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := testenv.CopyDir(filepath.Join(repoRoot, "examples", name), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// running lists the ids of the owner's running containers.
func (s *server) running() []string {
	s.t.Helper()
	var ids []string
	for _, c := range dockertest.Containers(s.t, s.owner) {
		if c.State == "running" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
