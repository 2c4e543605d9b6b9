package containers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver/docker/dockertest"
	"github.com/plumbline/plumbline/internal/registry"
)

// debianPackages turns the seed's Dockerfile into one that works without
// CRAN: its install.packages() lines become Debian packages. carrier is
// not packaged for Debian, and the example's crate does not need it
// (train.R builds the closure by hand), so its line goes; randomForest
// comes from r-cran-randomforest. Nothing else changes.
func debianPackages(t *testing.T, dockerfile string) {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range map[string]string{
		"# REQUIRED: Install carrier package to be able to use the crated model (wether from a training job\n# or uploaded)\n" +
			"RUN R -e \"install.packages('carrier', dependencies = TRUE, repos = 'https://cloud.r-project.org/')\"\n\n": "",
		"RUN R -e \"install.packages('randomForest', dependencies = TRUE, repos = 'https://cloud.r-project.org/')\"": "RUN apt-get update && apt-get install -y --no-install-recommends r-cran-randomforest && apt-get clean && rm -rf /var/lib/apt/lists/*",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("%s no longer has the line %q", dockerfile, old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	if err := os.WriteFile(dockerfile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSeedFolderInContainer is the seed's workflow, containerised:
// `plumbline up --driver docker` on the r-iris folder builds docker-context
// with the deployment's image tag (the build printed as it goes), runs the
// image's own CMD (start_plumber.R) with the model and code mounted as
// Azure mounts them, and scores the sample. Then: the container's
// AZUREML_* variables and its memory limit (Standard_DS2_v2: 7 GiB) read
// from the host; get-logs shows the container's output; kill -9 of the R
// process gets the instance replaced; kill -9 of the server, then a
// restart, re-adopts the running container (no second one, none orphaned).
func TestSeedFolderInContainer(t *testing.T) {
	s := newServer(t)
	rscript, err := exec.LookPath("Rscript")
	if err != nil {
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatal("PLUMBLINE_CI=1 and Rscript (to train the example's model) is missing")
		}
		t.Skip("Rscript is needed to train the example's model")
	}
	dir := copyExample(t, "r-iris")
	debianPackages(t, filepath.Join(dir, "docker-context", "Dockerfile"))
	if out, err := exec.Command(rscript, filepath.Join(dir, "train.R")).CombinedOutput(); err != nil {
		t.Fatalf("train.R: %v\n%s", err, out)
	}

	// The image tag is the deployment's; remove it first so up builds it.
	dockertest.RemoveImage(t, "myregistry.azurecr.io/r-iris-plumber:1")
	r := s.must(dir, "up", ".", "--driver", "docker")
	for _, want := range []string{
		"building docker-context", "is not on the server's container engine",
		"RUN apt-get update && apt-get install -y --no-install-recommends r-cran-randomforest",
		"Built myregistry.azurecr.io/r-iris-plumber:1", "Succeeded",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("up's progress lacks %q:\n%s", want, r.stderr)
		}
	}
	if got := strings.TrimSpace(r.stdout); got != `{"species":["virginica"]}` {
		t.Fatalf("up scored the sample as %q, want {\"species\":[\"virginica\"]}\n%s", got, r)
	}

	ids := s.running()
	if len(ids) != 1 {
		t.Fatalf("%d running containers, want 1", len(ids))
	}
	pid := dockertest.PID(t, ids[0])
	for name, want := range map[string]string{
		"AZUREML_MODEL_DIR":    "/var/azureml-app/azureml-models/iris-crate/1",
		"AML_APP_ROOT":         "/var/azureml-app/src",
		"AZUREML_ENTRY_SCRIPT": "plumber.R",
	} {
		if got := dockertest.ProcEnv(t, pid, name); got != want {
			t.Errorf("container %s = %q, want %q", name, got, want)
		}
	}
	if mem := dockertest.Cgroup(t, pid, "memory.max", "memory/memory.limit_in_bytes"); mem != strconv.Itoa(7<<30) {
		t.Errorf("container memory limit = %s, want %d (Standard_DS2_v2: 7 GiB)", mem, 7<<30)
	}
	logs := s.must("", "online-deployment", "get-logs", "-n", "blue", "-e", "r-endpoint-iris")
	if !strings.Contains(logs.stdout, "Running plumber API at http://0.0.0.0:8000") {
		t.Errorf("get-logs lacks start_plumber.R's output:\n%s", logs)
	}

	// kill -9 of the container's R: the instance is replaced.
	rpid := childPID(t, pid)
	if err := syscall.Kill(rpid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 R (pid %d): %v", rpid, err)
	}
	waitFor(t, 2*time.Minute, "the killed instance to be replaced and ready", func() (bool, string) {
		d := s.show("r-endpoint-iris", "blue")
		ok := len(d.Instances) == 1 && d.Instances[0].Ready && d.Instances[0].Restarts >= 1
		return ok, s.events("r-endpoint-iris", "blue")
	})
	if ev := s.events("r-endpoint-iris", "blue"); !strings.Contains(ev, "Exited: instance blue-0 exited with code -1 (killed by signal SIGKILL)") {
		t.Errorf("events lack the kill:\n%s", ev)
	}
	s.must(dir, "online-endpoint", "invoke", "--name", "r-endpoint-iris", "--request-file", "sample_request.json")

	// kill -9 of the server: its containers keep running; the next server
	// adopts them, starts no second one, and serves at once.
	before := s.running()
	s.kill9()
	s.start()
	waitFor(t, time.Minute, "the container to be adopted and ready", func() (bool, string) {
		d := s.show("r-endpoint-iris", "blue")
		return len(d.Instances) == 1 && d.Instances[0].Ready, s.events("r-endpoint-iris", "blue")
	})
	after := s.running()
	if len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Errorf("running containers before the kill %v, after the restart %v: want the same one, adopted", before, after)
	}
	if ev := s.events("r-endpoint-iris", "blue"); !strings.Contains(ev, "Adopted: Re-adopted instance blue-0") {
		t.Errorf("events lack the adoption:\n%s", ev)
	}
	r = s.must(dir, "online-endpoint", "invoke", "--name", "r-endpoint-iris", "--request-file", "sample_request.json")
	if !strings.Contains(r.stdout, "virginica") {
		t.Errorf("invoke after the restart: %s", r)
	}

	// Deleting the endpoint removes its container.
	s.must("", "online-endpoint", "delete", "--name", "r-endpoint-iris", "--yes")
	if left := s.running(); len(left) != 0 {
		t.Errorf("containers still running after the endpoint was deleted: %v", left)
	}
}

// childPID is the first child of pid (the server under the container's init).
func childPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("pid %d has no child", pid)
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

// TestPythonCustomContainer: a non-R Azure custom container, built by the
// server from the deployment's environment.build (its progress in the
// creation's output, its log in get-logs --container image-build), the
// model mounted, scored through the gateway; then the same image as a
// registered environment referenced by azureml:<name>:1.
func TestPythonCustomContainer(t *testing.T) {
	s := newServer(t)
	dir := copyExample(t, "python-generic")
	// Images are cached by their build context's digest: remove this one
	// so that the server builds it.
	digest, err := registry.LocalDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	dockertest.RemoveImage(t, container.BuildTag(digest, "python-generic/Dockerfile"))
	s.must(dir, "online-endpoint", "create", "-f", "endpoint.yml")
	r := s.must(dir, "online-deployment", "create", "-f", "container-deployment.yml", "--all-traffic")
	for _, want := range []string{"Building", "STEP 2/", "apt-get install", "Built image plumbline/build:", "Succeeded"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("create's progress lacks %q:\n%s", want, r.stderr)
		}
	}
	r = s.must(dir, "online-endpoint", "invoke", "--name", "py-endpoint", "--request-file", "sample_request.json")
	if got := strings.Join(strings.Fields(r.stdout), ""); got != `{"predictions":[4.1,-1.65]}` {
		t.Errorf("invoke = %q, want {\"predictions\": [4.1, -1.65]}", r.stdout)
	}
	r = s.must("", "online-deployment", "get-logs", "-n", "blue", "-e", "py-endpoint", "--container", "image-build")
	if !strings.Contains(r.stdout, "COPY src/score_server.py /app/score_server.py") {
		t.Errorf("the image build log lacks the COPY step:\n%s", r)
	}
	if pid := dockertest.PID(t, s.running()[0]); dockertest.Cgroup(t, pid, "memory.max", "memory/memory.limit_in_bytes") != strconv.Itoa(4<<30) {
		t.Errorf("memory limit is not Standard_F2s_v2's 4 GiB")
	}

	// The same container as a registered environment.
	r = s.must(dir, "environment", "create", "-f", "environment.yml")
	if !strings.Contains(r.stderr, "Registered environment py-linear-server version 1") {
		t.Errorf("environment create: %s", r)
	}
	r = s.must("", "environment", "list", "-o", "table")
	if !strings.Contains(r.stdout, "py-linear-server") {
		t.Errorf("environment list lacks py-linear-server:\n%s", r)
	}
	dep := filepath.Join(dir, "green.yml")
	os.WriteFile(dep, []byte("name: green\nendpoint_name: py-endpoint\nmodel: {name: py-linear, path: ./model}\n"+
		"environment: azureml:py-linear-server:1\ninstance_type: Standard_F2s_v2\ninstance_count: 1\n"), 0o644)
	r = s.must(dir, "online-deployment", "create", "-f", "green.yml")
	if strings.Contains(r.stderr, "Building") {
		t.Errorf("green uses the same build context as blue, yet its image was built again:\n%s", r.stderr)
	}
	r = s.must(dir, "online-endpoint", "invoke", "--name", "py-endpoint", "--deployment-name", "green", "--request-file", "sample_request.json")
	if !strings.Contains(r.stdout, "4.1") {
		t.Errorf("invoke green: %s", r)
	}
	r = s.must("", "environment", "show", "--name", "py-linear-server", "--version", "1", "-o", "json")
	if !strings.Contains(r.stdout, `"py-endpoint/green"`) {
		t.Errorf("environment show does not list the deployment using it:\n%s", r)
	}
	if r := s.cli("", "online-deployment", "create", "-f", filepath.Join(dir, "green.yml"), "--set", "name=red", "--set", "environment=azureml://registries/azureml/environments/sklearn-1.5/versions/1"); r.code == 0 ||
		!strings.Contains(r.stderr, "not available here") {
		t.Errorf("a curated environment: want a clear refusal, got:\n%s", r)
	}
}

// TestFailingBuilds: a build whose step fails, and one whose R
// install.packages() cannot reach CRAN (R exits 0), make the deployment
// Failed with the step and the line, and no container is started.
func TestFailingBuilds(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "endpoint.yml"), []byte("name: builds\nauth_mode: key\n"), 0o644)
	s.must(dir, "online-endpoint", "create", "-f", "endpoint.yml")
	for _, tt := range []struct{ name, dockerfile, want string }{
		{"step", "FROM debian:bookworm-slim\nRUN echo building && false\n",
			"ImageBuildFailure: image build failed at STEP 2/"},
		{"cran", "FROM rstudio/plumber:latest\nRUN R -e \"install.packages('carrier', repos = 'https://cloud.r-project.org/')\"\n",
			"R could not install a package"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := filepath.Join(dir, tt.name, "context")
			os.MkdirAll(ctx, 0o755)
			os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(tt.dockerfile), 0o644)
			os.WriteFile(filepath.Join(dir, tt.name, "d.yml"), []byte("name: "+tt.name+"\nendpoint_name: builds\n"+
				"environment:\n  build: {path: ./context}\n  inference_config:\n    liveness_route: {port: 8000, path: /}\n"+
				"    readiness_route: {port: 8000, path: /}\n    scoring_route: {port: 8000, path: /score}\n"+
				"instance_type: Standard_DS1_v2\ninstance_count: 1\n"), 0o644)
			r := s.cli(filepath.Join(dir, tt.name), "online-deployment", "create", "-f", "d.yml")
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("create: want a failure with %q, got:\n%s", tt.want, r)
			}
			if d := s.show("builds", tt.name); d.ProvisioningState != "Failed" || !strings.Contains(d.Reason, tt.want) {
				t.Errorf("deployment %s: %s %q, want Failed with %q", tt.name, d.ProvisioningState, d.Reason, tt.want)
			}
			if tt.name == "cran" && !strings.Contains(s.show("builds", tt.name).Reason, "package ‘carrier’ is not available") {
				t.Errorf("the reason does not quote R's line: %s", s.show("builds", tt.name).Reason)
			}
		})
	}
	if n := len(s.running()); n != 0 {
		t.Errorf("%d containers running after failed builds, want none", n)
	}
}
