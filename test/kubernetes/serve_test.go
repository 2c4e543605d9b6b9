package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/k8stest"
)

// TestServeDriverKubernetes: plumbline serve --driver kubernetes, inside
// the cluster's network namespace, runs an R plumber deployment as a
// Kubernetes Deployment: the model and code reach the pod through the
// storage initializer, the deployment becomes Succeeded when its pod is
// ready, and a request is scored through plumbline's gateway.
func TestServeDriverKubernetes(t *testing.T) {
	c := k8stest.Shared(t)
	importRImage(t, c)
	importPlumblineImage(t, c)
	ns := c.Namespace(t)
	ctx := context.Background()
	pl := startServe(t, c, ns, 8443)
	cli := pl.cli

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "greeting.txt"), []byte("hello from plumbline on Kubernetes\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "plumber.R"), []byte(`
#* @get /ready
function() "ready"

#* @post /score
function() list(greeting = readLines(file.path(Sys.getenv("AZUREML_MODEL_DIR"), "models", "greeting.txt")))
`), 0o644)
	os.WriteFile(filepath.Join(dir, "endpoint.yml"), []byte("name: k8s-greeter\nauth_mode: key\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "deployment.yml"), []byte(fmt.Sprintf(`name: blue
endpoint_name: k8s-greeter
model:
  name: greeter
  version: 1
  path: ./models
code_configuration:
  code: ./src
  scoring_script: plumber.R
environment:
  image: %s
  plumbline:
    runtime: plumber
  inference_config:
    liveness_route: {port: 8000, path: /ready}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
readiness_probe:
  initial_delay: 1
  period: 1
instance_type: Standard_DS1_v2
instance_count: 1
`, rBaseImage)), 0o644)
	for _, args := range [][]string{
		{"online-endpoint", "create", "-f", filepath.Join(dir, "endpoint.yml")},
		{"online-deployment", "create", "-f", filepath.Join(dir, "deployment.yml"), "--all-traffic"},
	} {
		begin := time.Now()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("plumbline %s (%s):\n%s", strings.Join(args, " "), time.Since(begin).Round(100*time.Millisecond), out)
	}
	out, err := cli("online-deployment", "show", "-n", "blue", "-e", "k8s-greeter", "--query", "provisioning_state", "-o", "tsv")
	if err != nil || strings.TrimSpace(out) != "Succeeded" {
		t.Errorf("provisioning_state = %q, %v; want Succeeded", out, err)
	}
	kubectl, _ := c.Kubectl(ctx, "-n", ns, "get", "deploy,pods,endpointslices", "-o", "wide")
	t.Logf("kubectl get deploy,pods,endpointslices:\n%s", kubectl)
	req := filepath.Join(dir, "req.json")
	os.WriteFile(req, []byte("{}"), 0o644)
	out, err = cli("online-endpoint", "invoke", "-n", "k8s-greeter", "--request-file", req)
	if err != nil || !strings.Contains(out, "hello from plumbline on Kubernetes") {
		t.Errorf("invoke through the gateway = %v:\n%s", err, out)
	}
	t.Logf("online-endpoint invoke: %s", out)
	// show lists the pod as the deployment's ready instance.
	out, err = cli("online-deployment", "show", "-n", "blue", "-e", "k8s-greeter", "--query", "instances[0].[name,state]", "-o", "tsv")
	if err != nil || !strings.HasPrefix(out, "k8s-greeter-blue-") || !strings.Contains(out, "Ready") {
		t.Errorf("show's instances = %q, %v; want the pod, Ready", out, err)
	}
	// get-logs reads the pod's containers: the scoring server's, and the
	// storage initializer's (plumbline fetch verified both digests).
	out, err = cli("online-deployment", "get-logs", "-n", "blue", "-e", "k8s-greeter", "--lines", "50")
	if err != nil || !strings.Contains(out, "Running plumber API") {
		t.Errorf("get-logs = %v:\n%s", err, out)
	}
	out, err = cli("online-deployment", "get-logs", "-n", "blue", "-e", "k8s-greeter", "--container", "storage-initializer")
	if err != nil || strings.Count(out, "verified") < 2 {
		t.Errorf("get-logs --container storage-initializer = %v:\n%s", err, out)
	}
	t.Logf("get-logs --container storage-initializer:\n%s", out)
	if out, err := cli("online-endpoint", "delete", "-n", "k8s-greeter", "--yes"); err != nil {
		t.Errorf("delete: %v\n%s", err, out)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := c.Kubectl(ctx, "-n", ns, "get", "deploy", "-o", "name")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Kubernetes Deployment is still there a minute after the endpoint was deleted: %s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// plServe is plumbline serve --driver kubernetes running inside the
// cluster's network namespace on NodeIP, and its CLI.
type plServe struct {
	c              *k8stest.Cluster
	url, data, log string
	exited         chan struct{} // closed when the process ends
}

// startServe starts plumbline serve --driver kubernetes on NodeIP:port for
// namespace ns, with extra flags, and waits until its API answers; it is
// stopped (and its log shown on failure) when t ends.
func startServe(t *testing.T, c *k8stest.Cluster, ns string, port int, extra ...string) *plServe {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data") // plumbline makes it, private
	url := fmt.Sprintf("https://%s:%d", k8stest.NodeIP, port)
	args := append([]string{"--data-dir", data,
		"--driver", "kubernetes", "--kubeconfig", c.Kubeconfig, "--k8s-namespace", ns,
		"--k8s-fetch-image", plumblineImage, "--k8s-fetch-url", url, "--k8s-image-pull-policy", "Never"}, extra...)
	pl := runServe(t, c, port, data, args)
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := pl.cli("online-endpoint", "list")
		if err == nil {
			break
		}
		select {
		case <-pl.exited:
			t.Fatalf("serve exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer within a minute: %v\n%s", err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return pl
}

// runServe starts plumbline serve with args on NodeIP:port inside the
// cluster's network namespace, data being its data dir; it is stopped
// (and its log shown on failure) when t ends.
func runServe(t *testing.T, c *k8stest.Cluster, port int, data string, args []string) *plServe {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	pl := &plServe{c: c, url: fmt.Sprintf("https://%s:%d", k8stest.NodeIP, port), data: data, log: logPath, exited: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	args = append([]string{"serve", "--listen", fmt.Sprintf("%s:%d", k8stest.NodeIP, port),
		"--hostname", k8stest.NodeIP, "--on-exit", "stop"}, args...)
	serve := c.Command(ctx, plumblineBin, args...)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { serve.Wait(); close(pl.exited) }()
	t.Cleanup(func() {
		serve.Process.Signal(os.Interrupt)
		select {
		case <-pl.exited:
		case <-time.After(time.Minute):
			cancel()
			<-pl.exited
		}
		cancel()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", strings.Join(args, " "), b)
		}
	})
	return pl
}

// cli runs the plumbline CLI against the server, as its admin.
func (pl *plServe) cli(args ...string) (string, error) {
	cmd := pl.c.Command(context.Background(), plumblineBin, append([]string{"--server", pl.url}, args...)...)
	tok, _ := os.ReadFile(filepath.Join(pl.data, "admin.token"))
	cmd.Env = append(cmd.Env, "PLUMBLINE_TOKEN="+strings.TrimSpace(string(tok)), "PLUMBLINE_CA_CERT="+filepath.Join(pl.data, "tls", "ca.crt"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs the CLI against pl and fails t when it fails; it logs how long
// the command took.
func (pl *plServe) must(t *testing.T, args ...string) string {
	t.Helper()
	begin := time.Now()
	out, err := pl.cli(args...)
	if err != nil {
		t.Fatalf("plumbline %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("plumbline %s (%s)", strings.Join(args, " "), time.Since(begin).Round(100*time.Millisecond))
	return out
}

// fileWriter returns a function that writes a file into a folder of t's
// and returns its path.
func fileWriter(t *testing.T) func(name, text string) string {
	dir := t.TempDir()
	return func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}
