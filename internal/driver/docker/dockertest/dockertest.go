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
