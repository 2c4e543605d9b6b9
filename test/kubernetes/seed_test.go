package kubernetes_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver/docker/dockertest"
	"github.com/plumbline/plumbline/internal/k8stest"
	"github.com/plumbline/plumbline/test/testenv"
)

// seedImage is the seed's docker-context built locally (the image its
// deployment.yml names lives in a registry the cluster cannot reach).
const seedImage = "localhost/plumbline-k8stest/r-iris-plumber:1"

// buildSeedImage builds examples/r-iris/docker-context with podman (on the
// R base image tagged rstudio/plumber:latest by scripts/r-base-image.sh),
// its CRAN installs replaced by Debian's packages as the container tests
// do (carrier is not packaged and the example's crate does not need it),
// and imports it into containerd.
func buildSeedImage(t *testing.T, c *k8stest.Cluster, dir string) {
	t.Helper()
	df := filepath.Join(dir, "docker-context", "Dockerfile")
	b, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range map[string]string{
		"RUN R -e \"install.packages('carrier', dependencies = TRUE, repos = 'https://cloud.r-project.org/')\"":      "",
		"RUN R -e \"install.packages('randomForest', dependencies = TRUE, repos = 'https://cloud.r-project.org/')\"": "RUN apt-get update && apt-get install -y --no-install-recommends r-cran-randomforest && apt-get clean && rm -rf /var/lib/apt/lists/*",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("%s no longer has the line %q", df, old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	if err := os.WriteFile(df, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	env := dockertest.PodmanEnv()
	if env == nil && os.Getenv("PLUMBLINE_CI") != "1" {
		t.Skip("no podman configuration (scripts/install-containers.sh)")
	}
	begin := time.Now()
	build := exec.Command("podman", "build", "-t", seedImage, filepath.Join(dir, "docker-context"))
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("podman build of the seed's docker-context: %v\n%s", err, out)
	}
	tar, err := k8stest.PodmanImage(seedImage, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(context.Background(), tar); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s and imported it into containerd in %s", seedImage, time.Since(begin).Round(100*time.Millisecond))
}

// TestSeedOnKubernetes: the seed's r-iris folder as the article deploys
// it, step by step, on the cluster: its model trained and registered, its
// endpoint.yml and deployment.yml (only the image name changed, to the
// locally built docker-context) applied to serve --driver kubernetes. The
// image's own CMD (start_plumber.R) serves the code and model the storage
// initializer fetched; the deployment is Succeeded, and the sample is
// scored through plumbline's gateway fed by EndpointSlices.
func TestSeedOnKubernetes(t *testing.T) {
	rscript, err := exec.LookPath("Rscript")
	if err != nil {
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatal("PLUMBLINE_CI=1 and Rscript (to train the example's model) is missing")
		}
		t.Skip("Rscript is needed to train the example's model")
	}
	c := k8stest.Shared(t)
	importPlumblineImage(t, c)
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(t.TempDir(), "r-iris")
	if err := testenv.CopyDir(filepath.Join(filepath.Dir(self), "..", "..", "examples", "r-iris"), dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rscript, filepath.Join(dir, "train.R")).CombinedOutput(); err != nil {
		t.Fatalf("train.R: %v\n%s", err, out)
	}
	buildSeedImage(t, c, dir)
	dep := filepath.Join(dir, "deployment.yml")
	b, _ := os.ReadFile(dep)
	if !strings.Contains(string(b), "image: myregistry.azurecr.io/r-iris-plumber:1") {
		t.Fatalf("%s no longer names myregistry.azurecr.io/r-iris-plumber:1", dep)
	}
	os.WriteFile(dep, []byte(strings.Replace(string(b), "myregistry.azurecr.io/r-iris-plumber:1", seedImage, 1)), 0o644)

	ns := c.Namespace(t)
	pl := startServe(t, c, ns, 8445, "--routes", "endpointslices")
	for _, args := range [][]string{
		{"model", "create", "--name", "iris-crate", "--path", filepath.Join(dir, "models")},
		{"online-endpoint", "create", "-f", filepath.Join(dir, "endpoint.yml")},
		{"online-deployment", "create", "-f", dep, "--all-traffic", "--skip-script-validation"},
	} {
		begin := time.Now()
		out, err := pl.cli(args...)
		if err != nil {
			t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("plumbline %s (%s)", strings.Join(args, " "), time.Since(begin).Round(100*time.Millisecond))
	}
	out, err := pl.cli("online-deployment", "show", "-n", "blue", "-e", "r-endpoint-iris", "--query", "provisioning_state", "-o", "tsv")
	if err != nil || strings.TrimSpace(out) != "Succeeded" {
		t.Errorf("provisioning_state = %q, %v; want Succeeded", out, err)
	}
	kubectl, _ := c.Kubectl(context.Background(), "-n", ns, "get", "deploy,pods,endpointslices", "-o", "wide")
	t.Logf("kubectl get deploy,pods,endpointslices:\n%s", kubectl)
	out, err = pl.cli("online-endpoint", "invoke", "--name", "r-endpoint-iris", "--request-file", filepath.Join(dir, "sample_request.json"))
	if err != nil || strings.TrimSpace(out) != `{"species":["virginica"]}` {
		t.Errorf("invoke = %v: %q; want {\"species\":[\"virginica\"]}", err, out)
	}
	t.Logf("online-endpoint invoke --name r-endpoint-iris --request-file sample_request.json: %s", out)
}
