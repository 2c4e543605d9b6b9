package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/k8stest"
)

// testServerDeployment is a deployment file of the conformance test server
// image: its own HTTP server (plumbline.command), DEPLOYMENT and TEMPLATE
// in its environment, which it reports back. A Kubernetes deployment's
// scale_settings default to target_utilization (as on Azure), which runs
// min_instances; type default runs instance_count.
func testServerDeployment(name, image, template string, count int) string {
	return fmt.Sprintf(`name: %s
endpoint_name: rollout
type: kubernetes
environment:
  image: %s
  plumbline:
    command: [/testserver, -host, 0.0.0.0, -port, "{port}"]
  inference_config:
    liveness_route: {port: 5001, path: /live}
    readiness_route: {port: 5001, path: /ready}
    scoring_route: {port: 5001, path: /score}
environment_variables:
  DEPLOYMENT: %s
  TEMPLATE: %s
readiness_probe:
  initial_delay: 1
  period: 1
request_settings:
  max_concurrent_requests_per_instance: 4
scale_settings:
  type: default
resources:
  requests: {cpu: 10m, memory: 32Mi}
  limits: {cpu: 500m, memory: 64Mi}
instance_count: %d
`, name, image, name, template, count)
}

// TestServeEndpointSlicesRollout: plumbline serve --driver kubernetes
// --routes endpointslices (the gateway's ready instances from the
// EndpointSlice informer), under load through that gateway: a rolling
// image update of blue (2 pods), then a blue/green shift (100/0 → 50/50 →
// 0/100) and the deletion of blue, with no failed request; every version
// answered.
func TestServeEndpointSlicesRollout(t *testing.T) {
	c := k8stest.Shared(t)
	testImages(t, c)
	importPlumblineImage(t, c)
	ns := c.Namespace(t)
	pl := startServe(t, c, ns, 8444, "--routes", "endpointslices")
	must := func(args ...string) string { t.Helper(); return pl.must(t, args...) }
	write := fileWriter(t)
	must("online-endpoint", "create", "-f", write("endpoint.yml", "name: rollout\nauth_mode: key\n"))
	must("online-deployment", "create", "-f", write("blue.yml", testServerDeployment("blue", serverImage, "v1", 2)), "--all-traffic")
	if out := must("online-deployment", "show", "-n", "blue", "-e", "rollout", "--query", "length(instances)", "-o", "tsv"); strings.TrimSpace(out) != "2" {
		t.Fatalf("blue has %s instances; want 2", out)
	}
	key := strings.TrimSpace(must("online-endpoint", "get-credentials", "-n", "rollout", "--query", "primaryKey", "-o", "tsv"))

	stop := make(chan struct{})
	l := startLoadOf(scorer(t, c, pl, "rollout", key), 3, stop)
	stopLoad := sync.OnceFunc(func() { close(stop); <-l.done })
	defer stopLoad()
	l.waitCount(t, "blue/v1")

	// A rolling image update: Kubernetes starts a new pod, waits for it to
	// be ready, then ends an old one; the gateway follows the slices.
	begin := time.Now()
	must("online-deployment", "update", "-f", write("blue-v2.yml", testServerDeployment("blue", serverImageV2, "v2", 2)))
	t.Logf("rolling update of blue to %s: Succeeded in %s", serverImageV2, time.Since(begin).Round(100*time.Millisecond))
	l.waitCount(t, "blue/v2")
	out, _ := c.Kubectl(context.Background(), "-n", ns, "get", "deploy,pods,endpointslices", "-o", "wide")
	t.Logf("after the rolling update, kubectl get deploy,pods,endpointslices:\n%s", out)

	// Blue/green.
	must("online-deployment", "create", "-f", write("green.yml", testServerDeployment("green", serverImageV2, "green", 1)))
	must("online-endpoint", "update", "-n", "rollout", "--traffic", "blue=50 green=50")
	l.waitCount(t, "green/green")
	must("online-endpoint", "update", "-n", "rollout", "--traffic", "blue=0 green=100")
	time.Sleep(time.Second) // requests sent before the change finish
	mark := l.counts()
	time.Sleep(2 * time.Second)
	if now := l.counts(); now["blue/v2"] != mark["blue/v2"] {
		t.Errorf("blue answered %d requests after its traffic went to 0", now["blue/v2"]-mark["blue/v2"])
	}
	must("online-deployment", "delete", "-n", "blue", "-e", "rollout", "--yes")
	time.Sleep(3 * time.Second) // blue's pods end while green serves
	stopLoad()
	t.Logf("answers by deployment/template: %v; failed: %d", l.counts(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the rollouts: %v", n, l.failureList())
	}
	if l.bounded.Load() {
		t.Errorf("the load ended on its bound, not when the test stopped it")
	}
	if out, _ := os.ReadFile(pl.log); !bytes.Contains(out, []byte("gateway routes from EndpointSlices")) {
		t.Errorf("serve did not say its gateway routes from EndpointSlices")
	}
}

// scorer returns a function that sends one scoring request to endpoint
// through pl's gateway (inside the cluster's namespace, trusting pl's
// local CA) and returns the status and the variables the pod reported.
func scorer(t *testing.T, c *k8stest.Cluster, pl *plServe, endpoint, key string) func() (int, map[string]string, error) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(pl.data, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext:         c.DialContext, // the gateway listens in the cluster's namespace
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 8,
	}}
	t.Cleanup(hc.CloseIdleConnections)
	body, _ := json.Marshal(map[string]any{"env": []string{"DEPLOYMENT", "TEMPLATE"}})
	return func() (int, map[string]string, error) {
		req, _ := http.NewRequest("POST", pl.url+"/endpoints/"+endpoint+"/score", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got := map[string]string{}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &got) != nil {
			got["body"] = string(b)
			return resp.StatusCode, got, nil
		}
		return http.StatusOK, got, nil
	}
}

// waitCount waits until answer key (DEPLOYMENT/TEMPLATE) has come 20 times.
func (l *load) waitCount(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.counts()[key] < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("no 20 answers from %s within 30 s; answers %v, %d failed: %v", key, l.counts(), l.failed.Load(), l.failureList())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
