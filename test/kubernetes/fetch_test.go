package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/docker/dockertest"
	"github.com/plumbline/plumbline/internal/driver/kubernetes"
	"github.com/plumbline/plumbline/internal/k8stest"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/store/sqlite"
	"github.com/plumbline/plumbline/internal/tlsca"
)

const (
	plumblineImage = "localhost/plumbline/plumbline:k8stest"
	rBaseImage     = "localhost/plumbline/r-base:bookworm-1"
)

var (
	// plumblineBin is the static plumbline binary packed into the image,
	// which the serve test also runs; plumblineDir holds it.
	plumblineBin, plumblineDir string
	plImageOnce                sync.Once
	plImageErr                 error
	rImageOnce                 sync.Once
	rImageErr                  error
)

// plumblineImageTar builds plumbline statically and packs it as an image
// with the binary on its PATH: the storage initializer's image.
func importPlumblineImage(t *testing.T, c *k8stest.Cluster) {
	t.Helper()
	plImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plumbline-image-")
		if err != nil {
			plImageErr = err
			return
		}
		plumblineDir = dir // removed by TestMain
		_, self, _, _ := runtime.Caller(0)
		bin := filepath.Join(dir, "plumbline")
		plumblineBin = bin
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/plumbline")
		cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			plImageErr = fmt.Errorf("go build plumbline: %v\n%s", err, out)
			return
		}
		tar := filepath.Join(dir, "image.tar")
		if plImageErr = k8stest.ImageTar(tar, plumblineImage, []string{"/usr/local/bin/plumbline"}, []string{"PATH=/usr/local/bin"},
			[]k8stest.File{{Path: "/usr/local/bin/plumbline", Source: bin}}); plImageErr != nil {
			return
		}
		plImageErr = c.ImportImage(context.Background(), tar)
	})
	if plImageErr != nil {
		t.Fatal(plImageErr)
	}
}

// importRImage imports the R + plumber base image (scripts/r-base-image.sh,
// built by scripts/install-containers.sh into podman's store).
func importRImage(t *testing.T, c *k8stest.Cluster) {
	t.Helper()
	rImageOnce.Do(func() {
		tar, err := k8stest.PodmanImage(rBaseImage, dockertest.PodmanEnv())
		if err != nil {
			rImageErr = err
			return
		}
		begin := time.Now()
		rImageErr = c.ImportImage(context.Background(), tar)
		t.Logf("imported %s into containerd in %s", rBaseImage, time.Since(begin).Round(100*time.Millisecond))
	})
	if rImageErr != nil {
		if os.Getenv("PLUMBLINE_CI") != "1" && strings.Contains(rImageErr.Error(), "podman") {
			t.Skipf("no R base image: %v", rImageErr)
		}
		t.Fatal(rImageErr)
	}
}

// controlPlane is plumbline's API server with a real registry, serving TLS
// inside the cluster's network namespace on NodeIP, where pods reach it.
type controlPlane struct {
	url    string
	caPEM  []byte
	tokens *auth.ArtifactTokens
	reg    *registry.Registry
}

func startControlPlane(t *testing.T, c *k8stest.Cluster) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, blobs, filepath.Join(dir, "cache"), registry.Limits{})
	secret := make([]byte, 32)
	rand.Read(secret)
	tokens, err := auth.NewArtifactTokens(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsca.Ensure(filepath.Join(dir, "tls"), []string{k8stest.NodeIP})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(ca.CertPath())
	admin := make([]byte, 16)
	rand.Read(admin)
	api := apiserver.New(apiserver.Config{Store: st, Registry: reg, AdminToken: fmt.Sprintf("%x", admin), Fetch: tokens,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := c.Listen("tcp", net.JoinHostPort(k8stest.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, TLSConfig: &tls.Config{GetCertificate: ca.GetCertificate}, ReadHeaderTimeout: 10 * time.Second}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return &controlPlane{url: "https://" + l.Addr().String(), caPEM: caPEM, tokens: tokens, reg: reg}
}

// ingest registers a local folder as an artifact, as an upload would.
func (cp *controlPlane) ingest(t *testing.T, dir string) registry.Artifact {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(registry.WriteTar(context.Background(), pw, dir, nil)) }()
	a, err := cp.reg.Ingest(context.Background(), pr, registry.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFetchIntoPods: an R plumber deployment whose model and code are not
// in its image: the storage initializer (plumbline fetch, in the plumbline
// image) downloads them with a token scoped to their digests, verifies
// them, and the R container (the R base image, imported into containerd)
// reads them read-only at Azure's paths. A token that does not allow the
// model fails the deployment with the initializer's own words.
func TestFetchIntoPods(t *testing.T) {
	c := k8stest.Shared(t)
	importRImage(t, c)
	importPlumblineImage(t, c)
	cp := startControlPlane(t, c)
	ns := c.Namespace(t)

	work := t.TempDir()
	models := filepath.Join(work, "models")
	src := filepath.Join(work, "src")
	os.MkdirAll(models, 0o755)
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(models, "greeting.txt"), []byte("hello from the registry\n"), 0o644)
	os.WriteFile(filepath.Join(src, "plumber.R"), []byte(`
#* @get /ready
function() "ready"

#* @post /score
function() {
  model <- file.path(Sys.getenv("AZUREML_MODEL_DIR"), "models", "greeting.txt")
  list(
    greeting = readLines(model),
    model_dir = Sys.getenv("AZUREML_MODEL_DIR"),
    app_root = Sys.getenv("AML_APP_ROOT"),
    entry = Sys.getenv("AZUREML_ENTRY_SCRIPT"),
    model_writable = file.access(dirname(model), 2) == 0 && tryCatch(file.create(file.path(dirname(model), "x")), warning = function(w) FALSE),
    code_files = list.files(Sys.getenv("AML_APP_ROOT"))
  )
}
`), 0o644)
	model, code := cp.ingest(t, models), cp.ingest(t, src)

	var mu sync.Mutex
	allow := func(_ context.Context, endpoint, deployment string, digests []string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if deployment == "denied" {
			digests = []string{code.Digest} // not the model
		}
		return cp.tokens.Issue(endpoint+"/"+deployment, digests, time.Hour)
	}
	d, err := kubernetes.New(t.Context(), kubernetes.Config{
		REST: c.Config, Namespace: ns, Owner: "fetch-test", ImagePullPolicy: corev1.PullNever,
		FetchImage: plumblineImage, FetchServer: cp.url, FetchCA: cp.caPEM, Token: allow,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name string) driver.DeploymentSpec {
		return driver.DeploymentSpec{
			Endpoint: "fetch", Deployment: name,
			Template: driver.InstanceSpec{
				Runtime: driver.RuntimePlumber, Image: rBaseImage, Port: 8000, EntryScript: "plumber.R",
				ModelName: "greeter", ModelVersion: "3", Template: "t1:" + name, MemoryBytes: 512 << 20,
			},
			Model:     &driver.Artifact{Digest: model.Digest, Path: "models"},
			Code:      &driver.Artifact{Digest: code.Digest, Path: "src"},
			Replicas:  1,
			Readiness: driver.Probe{Path: "/ready", Period: time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
		}
	}

	begin := time.Now()
	if err := d.ApplyDeployment(t.Context(), spec("blue")); err != nil {
		t.Fatal(err)
	}
	var st driver.DeploymentStatus
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err = d.ObserveDeployment(t.Context(), "fetch", "blue")
		if err == nil && st.State == driver.DeploymentAvailable {
			break
		}
		if err == nil && st.State == driver.DeploymentFailed {
			t.Fatalf("deployment failed: %s: %s", st.Reason, st.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Available after 3 min: %+v %v\nkubelet:\n%s", st, err, c.Log("kubelet", 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("R deployment with fetched model and code: create → Available in %s", time.Since(begin).Round(100*time.Millisecond))

	in := st.Instances[0]
	resp, err := c.HTTPClient().Post("http://"+in.Addr+"/score", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Greeting      []string `json:"greeting"`
		ModelDir      []string `json:"model_dir"`
		AppRoot       []string `json:"app_root"`
		Entry         []string `json:"entry"`
		ModelWritable []bool   `json:"model_writable"`
		CodeFiles     []string `json:"code_files"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("score answered %d %s: %v", resp.StatusCode, body, err)
	}
	want := `{"greeting":["hello from the registry"],"model_dir":["/var/azureml-app/azureml-models/greeter/3"],"app_root":["/var/azureml-app/src"],"entry":["plumber.R"],"model_writable":[false],"code_files":["plumber.R"]}`
	if gb, _ := json.Marshal(got); string(gb) != want {
		t.Errorf("the R container sees %s\nwant %s", gb, want)
	}

	r, err := d.Logs(t.Context(), in.ID, driver.LogOptions{Container: kubernetes.InitContainer})
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Contains(logs, []byte("verified")) || !bytes.Contains(logs, []byte(model.Digest[:19])) {
		t.Errorf("storage-initializer log lacks the verified fetch of the model:\n%s", logs)
	}
	t.Logf("get-logs --container storage-initializer:\n%s", logs)

	if err := d.ApplyDeployment(t.Context(), spec("denied")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		st, err = d.ObserveDeployment(t.Context(), "fetch", "denied")
		if err == nil && st.State == driver.DeploymentFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a deployment whose token does not allow its model did not fail: %+v %v", st, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.Reason != kubernetes.ReasonFetch || !strings.Contains(st.Message, "401") || !strings.Contains(st.Message, "storage-initializer") {
		t.Errorf("reason = %s: %s; want %s quoting the 401 and naming get-logs --container storage-initializer", st.Reason, st.Message, kubernetes.ReasonFetch)
	}
	t.Logf("%s: %s", st.Reason, st.Message)
}
