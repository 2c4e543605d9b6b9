package docker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/docker"
	"github.com/plumbline/plumbline/internal/driver/docker/dockertest"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
)

// newDriver connects a driver with a fresh owner; its containers are
// removed when t ends.
func newDriver(t *testing.T) *docker.Driver {
	t.Helper()
	h := dockertest.Host(t)
	d, err := docker.New(t.Context(), docker.Config{Host: h, Owner: dockertest.Owner(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// testServerImage builds (once per test binary, and once per machine for a
// given source) an image FROM scratch holding drivertest's Go test server,
// statically linked. It goes through Driver.Build, so it also proves a
// build from a tar context.
func testServerImage(t *testing.T, d *docker.Driver) string {
	t.Helper()
	imageOnce.Do(func() { imageRef, imageErr = buildTestServerImage(t.Context(), d) })
	if imageErr != nil {
		t.Fatalf("test server image: %v", imageErr)
	}
	return imageRef
}

func buildTestServerImage(ctx context.Context, d *docker.Driver) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "drivertest", "testdata", "testserver", "main.go")
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(code, runtime.Version()...))
	ref := "plumbline-test/testserver:" + hex.EncodeToString(sum[:6])
	if ok, err := d.ImageExists(ctx, ref); err != nil || ok {
		return ref, err
	}
	dir, err := os.MkdirTemp("", "plumbline-testserver-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(dir, "testserver"), src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY testserver /testserver\n"), 0o644); err != nil {
		return "", err
	}
	tarball := docker.ContextTar(dir)
	defer tarball.Close()
	var log strings.Builder
	if err := d.Build(ctx, tarball, "", []string{ref}, &log); err != nil {
		return "", fmt.Errorf("%v\n%s", err, log.String())
	}
	return ref, nil
}

// harness runs the Go test server in its image, with a model and code
// folder mounted.
func harness(d *docker.Driver) drivertest.Harness {
	return drivertest.Harness{
		Spec: func(t *testing.T, id string, s drivertest.Server) driver.InstanceSpec {
			model, code := t.TempDir(), filepath.Join(t.TempDir(), "src")
			os.MkdirAll(filepath.Join(model, "models"), 0o755)
			os.WriteFile(filepath.Join(model, "models", "weights.json"), []byte("{}"), 0o644)
			os.MkdirAll(code, 0o755)
			os.WriteFile(filepath.Join(code, "score.py"), []byte("# scoring\n"), 0o644)
			cmd := []string{"/testserver", "-host", "0.0.0.0", "-port", "{port}"}
			if s.ExitAfter > 0 {
				cmd = append(cmd, "-exit-after="+s.ExitAfter.String(), "-exit-code="+strconv.Itoa(s.ExitCode))
			}
			if s.IgnoreTerm {
				cmd = append(cmd, "-ignore-term")
			}
			parts := strings.SplitN(id, ".", 3)
			return driver.InstanceSpec{
				ID: id, Endpoint: parts[0], Deployment: parts[1], Instance: parts[2],
				Runtime: driver.RuntimeGeneric, Image: testServerImage(t, d), Command: cmd, Port: 8080,
				ModelDir: model, ModelName: "weights", ModelVersion: "3",
				CodeDir: code, EntryScript: "score.py", Env: s.Env, Template: "t1",
			}
		},
		Exits: true, IgnoresTerm: true,
		Paths: func(spec driver.InstanceSpec) (string, string) {
			return container.ModelDir("", spec.ModelName, spec.ModelVersion), container.CodeDir(spec.CodeDir)
		},
		StartTimeout: time.Minute,
		// A restarted server: a new client with the same owner.
		Reopen: func(t *testing.T, old driver.Driver) driver.Driver {
			od := old.(*docker.Driver)
			od.Close()
			nd, err := docker.New(t.Context(), docker.Config{Host: dockertest.Host(t), Owner: od.Owner(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nd.Close() })
			return nd
		},
	}
}

func TestConformance(t *testing.T) {
	d := newDriver(t)
	drivertest.Run(t, d, harness(d))
}

// TestContainerContract checks what the conformance suite cannot see:
// mounts are read-only, the template and owner labels come back, the port
// is published on the loopback only, model_mount_path is honoured, and the
// memory and CPU limits reach the container's cgroup.
func TestContainerContract(t *testing.T) {
	d := newDriver(t)
	h := harness(d)
	spec := h.Spec(t, "contract.blue.blue-0", drivertest.Server{})
	spec.ModelMountPath = "/models"
	spec.MemoryBytes = 256 << 20
	spec.CPU = 0.5
	spec.Template = "v1-abc"
	st, err := d.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q, want a port published on 127.0.0.1", st.Addr)
	}
	if st.Template != "v1-abc" {
		t.Errorf("Start().Template = %q, want v1-abc", st.Template)
	}
	list, err := d.List(t.Context())
	if err != nil || len(list) != 1 || list[0].Template != "v1-abc" {
		t.Errorf("List() = %+v, %v; want one instance with template v1-abc", list, err)
	}
	// The container's process shows its environment once it has exec'd its
	// command: until then /proc holds the runtime's own. Serving proves it.
	waitLive(t, st.Addr, time.Minute)
	env := dockertest.ProcEnv(t, containerPID(t, spec.ID, d), "AZUREML_MODEL_DIR")
	if got, want := strings.TrimSpace(env), "/models/weights/3"; got != want {
		t.Errorf("AZUREML_MODEL_DIR = %q, want %q (model_mount_path/name/version)", got, want)
	}
	mem := dockertest.Cgroup(t, containerPID(t, spec.ID, d), "memory.max", "memory/memory.limit_in_bytes")
	if mem != strconv.Itoa(256<<20) {
		t.Errorf("container memory limit = %q, want %d", mem, 256<<20)
	}
	cpu := dockertest.Cgroup(t, containerPID(t, spec.ID, d), "cpu.max", "cpu/cpu.cfs_quota_us")
	if !strings.HasPrefix(cpu, "50000") {
		t.Errorf("container CPU quota = %q, want 50000 (0.5 of a 100000 µs period)", cpu)
	}
	if err := d.Stop(t.Context(), spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// containerPID is the host pid of the instance's container's init.
func containerPID(t *testing.T, id string, d *docker.Driver) int {
	t.Helper()
	st, err := d.Inspect(t.Context(), id)
	if err != nil || st.PID == 0 {
		t.Fatalf("Inspect(%s) = %+v, %v; want a running container with a pid", id, st, err)
	}
	return st.PID
}

// TestMissingImage: an image that is not there and cannot be pulled is a
// start error naming the image and what to do.
func TestMissingImage(t *testing.T) {
	d := newDriver(t)
	_, err := d.Start(t.Context(), driver.InstanceSpec{
		ID: "missing.blue.blue-0", Endpoint: "missing", Deployment: "blue", Instance: "blue-0",
		Runtime: driver.RuntimeImage, Image: "registry.invalid/nobody/nothing:1", Port: 8000,
	})
	var se *driver.StartError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "registry.invalid/nobody/nothing:1") || !strings.Contains(err.Error(), "plumbline image build") {
		t.Errorf("Start() = %v, want a StartError naming the image and how to build it", err)
	}
}

// TestBuildFailure: a failing RUN fails the build with its step; an R
// install.packages() that cannot reach its repository (exit 0) fails it too
// with R's line, and leaves no image behind.
func TestBuildFailure(t *testing.T) {
	d := newDriver(t)
	build := func(dockerfile, tag string) (error, string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
		var log strings.Builder
		tb := docker.ContextTar(dir)
		defer tb.Close()
		return d.Build(t.Context(), tb, "", []string{tag}, &log), log.String()
	}
	img := testServerImage(t, d)
	err, log := build("FROM "+img+"\nRUN /testserver -no-such-flag\n", "plumbline-test/fails:1")
	var be *docker.BuildError
	if !errors.As(err, &be) || !strings.Contains(be.Step, "RUN /testserver -no-such-flag") {
		t.Errorf("Build() = %v, want a BuildError at the RUN step\n%s", err, log)
	}

	err, log = build("FROM "+img+"\nRUN [\"/testserver\", \"-print\", \"Warning message:\\npackage ‘carrier’ is not available for this version of R\"]\n", "plumbline-test/r-unavailable:1")
	if !errors.As(err, &be) || !strings.Contains(be.Message, "package ‘carrier’ is not available") {
		t.Errorf("Build() = %v, want a BuildError quoting R's line\n%s", err, log)
	}
	if ok, _ := d.ImageExists(t.Context(), "plumbline-test/r-unavailable:1"); ok {
		t.Errorf("the image of a build that failed is still tagged")
	}
}

// TestRecoverAdopts: a driver started anew (a restarted server with the
// same owner) re-adopts the running containers of its owner, with their
// template and address, removes the exited ones, and never sees another
// owner's.
func TestRecoverAdopts(t *testing.T) {
	first := newDriver(t)
	h := harness(first)
	run := h.Spec(t, "adopt.blue.blue-0", drivertest.Server{})
	run.Template = "tmpl-1"
	st, err := first.Start(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	dead := h.Spec(t, "adopt.blue.blue-1", drivertest.Server{ExitAfter: 100 * time.Millisecond, ExitCode: 2})
	if _, err := first.Start(t.Context(), dead); err != nil {
		t.Fatal(err)
	}
	other := newDriver(t) // another owner
	if _, err := other.Start(t.Context(), h.Spec(t, "adopt.blue.blue-0", drivertest.Server{})); err != nil {
		t.Fatalf("another owner's instance with the same ID: %v", err)
	}
	time.Sleep(time.Second) // blue-1 exits

	again, err := docker.New(t.Context(), docker.Config{Host: dockertest.Host(t), Owner: ownerOf(t, first, run.ID), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got, err := again.Recover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != run.ID || got[0].Template != "tmpl-1" || got[0].Addr != st.Addr || got[0].State != driver.StateRunning {
		t.Fatalf("Recover() = %+v, want only %s running at %s with template tmpl-1", got, run.ID, st.Addr)
	}
	if _, err := again.Inspect(t.Context(), dead.ID); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("the exited instance after Recover: %v, want removed", err)
	}
	if list, _ := other.List(t.Context()); len(list) != 1 {
		t.Errorf("the other owner's instances after Recover: %+v, want untouched", list)
	}
}

// ownerOf reads the owner label of an instance's container.
func ownerOf(t *testing.T, d *docker.Driver, id string) string {
	t.Helper()
	return d.Owner()
}

// waitLive waits until the test server at addr answers GET /live.
func waitLive(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get("http://" + addr + "/live")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance at %s did not answer GET /live within %s (last: %v)", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
