// Package dockertest gives tests a real Docker Engine API (Podman's API
// service on CI) and cleans up the containers they start.
//
// Where the engine is, in order:
//
//  1. PLUMBLINE_TEST_DOCKER_HOST (set by .ci/run, which starts
//     `podman system service` on a private socket);
//  2. Podman configured by scripts/install-containers.sh (its env file under
//     PLUMBLINE_PODMAN_BASE, default /var/cache/plumbline-ci/podman): the
//     test binary starts `podman system service` on a socket of its own,
//     ended with the process (and after 60 s idle);
//  3. otherwise the test is skipped, or fails under PLUMBLINE_CI=1.
//
// Every test gets its own owner id ("test-…"), and its containers are
// removed when it ends, passed or failed. Containers of test owners older
// than an hour (a test binary killed mid-run) are removed too.
//
// This package is for tests only.
package dockertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/plumbline/plumbline/internal/container"
)

// HostEnv names the variable that gives the engine's address.
const HostEnv = "PLUMBLINE_TEST_DOCKER_HOST"

var (
	once    sync.Once
	host    string
	envVars []string // CONTAINERS_* for a podman started here
	hostErr error
)

// Host returns the Engine API address for t, or skips t (fails it under
// PLUMBLINE_CI=1) when there is none.
func Host(t testing.TB) string {
	t.Helper()
	once.Do(func() { host, hostErr = find() })
	if hostErr != nil {
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatalf("PLUMBLINE_CI=1 and no container engine: %v", hostErr)
		}
		t.Skipf("no container engine: %v", hostErr)
	}
	return host
}

// PodmanEnv is the environment (CONTAINERS_CONF…) under which the podman
// CLI sees the engine's store; nil when the engine was given by HostEnv
// and no configuration was found.
func PodmanEnv() []string {
	if envVars != nil {
		return envVars
	}
	vars, _ := readEnvFile(envFile())
	return vars
}

func envFile() string {
	base := os.Getenv("PLUMBLINE_PODMAN_BASE")
	if base == "" {
		base = "/var/cache/plumbline-ci/podman"
	}
	return filepath.Join(base, "env")
}

func find() (string, error) {
	if h := os.Getenv(HostEnv); h != "" {
		return h, ping(h)
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		return "", fmt.Errorf("%s is not set and podman is not installed (bash scripts/install-containers.sh sets it up)", HostEnv)
	}
	vars, err := readEnvFile(envFile())
	if err != nil {
		return "", fmt.Errorf("%s is not set and podman is not configured for plumbline (%v); run bash scripts/install-containers.sh", HostEnv, err)
	}
	dir, err := os.MkdirTemp("", "plumbline-podman-")
	if err != nil {
		return "", err
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command(podman, "system", "service", "--time=60", "unix://"+sock)
	cmd.Env = append(os.Environ(), vars...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	logf, _ := os.Create(filepath.Join(dir, "service.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start podman system service: %w", err)
	}
	go cmd.Wait()
	h := "unix://" + sock
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			if err := ping(h); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "service.log"))
			return "", fmt.Errorf("podman system service did not answer on %s within 30s: %s", sock, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	envVars = vars
	return h, nil
}

func ping(h string) error {
	cli, err := client.New(client.WithHost(h))
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return err
}

// readEnvFile reads the export lines of install-containers.sh's env file.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if kv, ok := strings.CutPrefix(line, "export "); ok && strings.Contains(kv, "=") {
			out = append(out, kv)
		}
	}
	return out, sc.Err()
}

// Owner returns a fresh owner id for t and removes t's containers (and
// stale ones of earlier test runs) when t ends.
func Owner(t testing.TB) string {
	t.Helper()
	h := Host(t)
	b := make([]byte, 6)
	rand.Read(b)
	owner := "test-" + hex.EncodeToString(b)
	sweep(t, h, func(labels map[string]string, created time.Time) bool {
		o := labels[container.LabelOwner]
		return strings.HasPrefix(o, "test-") && time.Since(created) > time.Hour
	})
	t.Cleanup(func() {
		sweep(t, h, func(labels map[string]string, _ time.Time) bool { return labels[container.LabelOwner] == owner })
	})
	return owner
}

// sweep force-removes the plumbline containers that match.
func sweep(t testing.TB, h string, match func(labels map[string]string, created time.Time) bool) {
	cli, err := client.New(client.WithHost(h))
	if err != nil {
		t.Errorf("clean up containers: %v", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", container.LabelOwner)})
	if err != nil {
		t.Errorf("clean up containers: %v", err)
		return
	}
	for _, c := range res.Items {
		if match(c.Labels, time.Unix(c.Created, 0)) {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				t.Logf("clean up container %s: %v", c.ID, err)
			}
		}
	}
}

// Containers lists the containers of owner (all states), as the engine
// reports them.
func Containers(t testing.TB, owner string) []dcontainer.Summary {
	t.Helper()
	cli, err := client.New(client.WithHost(Host(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", container.LabelOwner+"="+owner)})
	if err != nil {
		t.Fatalf("list containers of %s: %v", owner, err)
	}
	return res.Items
}

// PID is the host pid of a running container's first process (its init).
func PID(t testing.TB, containerID string) int {
	t.Helper()
	cli, err := client.New(client.WithHost(Host(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := cli.ContainerInspect(t.Context(), containerID, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.State.Pid == 0 {
		t.Fatalf("inspect container %s: %v; want it running", containerID, err)
	}
	return res.Container.State.Pid
}

// ProcEnv is a variable of process pid's environment, read from
// /proc/<pid>/environ ("" if unset): a container's environment, seen from
// the host, whatever the image holds (a scratch image has no shell).
func ProcEnv(t testing.TB, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("read the environment of pid %d: %v", pid, err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// Cgroup reads a limit of process pid's cgroup: the cgroup v2 file v2
// ("memory.max"), else the v1 controller file v1 ("memory/memory.limit_in_bytes").
func Cgroup(t testing.TB, pid int, v2, v1 string) string {
	t.Helper()
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	ctrlV1, fileV1, _ := strings.Cut(v1, "/")
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrl, path := parts[1], parts[2]
		var files []string
		switch {
		case ctrl == "":
			files = []string{filepath.Join("/sys/fs/cgroup", path, v2), filepath.Join("/sys/fs/cgroup/unified", path, v2)}
		case strings.Contains(ctrl, ctrlV1):
			files = []string{filepath.Join("/sys/fs/cgroup", ctrlV1, path, fileV1), filepath.Join("/sys/fs/cgroup", ctrl, path, fileV1)}
		}
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) != "" {
				return strings.TrimSpace(string(b))
			}
		}
	}
	t.Fatalf("no %s or %s for pid %d (cgroups: %s)", v2, v1, pid, cg)
	return ""
}

// RemoveImage removes an image tag from the engine, if there, so that a
// test sees it built.
func RemoveImage(t testing.TB, ref string) {
	t.Helper()
	cli, err := client.New(client.WithHost(Host(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.ImageRemove(t.Context(), ref, client.ImageRemoveOptions{Force: true}); err != nil && !strings.Contains(strings.ToLower(err.Error()), "no such image") && !strings.Contains(err.Error(), "not known") && !strings.Contains(err.Error(), "not found") {
		t.Fatalf("remove image %s: %v", ref, err)
	}
}
