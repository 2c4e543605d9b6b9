package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/k8stest"
	"github.com/plumbline/plumbline/internal/store/postgres/pgtest"
)

// postgresInCluster makes the test PostgreSQL server reachable from the
// cluster's network namespace: a listener on NodeIP there, each
// connection piped to the server on the host's loopback. It returns the
// store URL as seen from inside.
func postgresInCluster(t *testing.T, c *k8stest.Cluster) string {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Listen("tcp", net.JoinHostPort(k8stest.NodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	upstream := u.Host
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				io.Copy(in, out)
			}()
		}
	}()
	u.Host = l.Addr().String()
	return u.String()
}

// TestRolesOnKubernetes is the chart's topology as processes: a control
// replica (--role control, PostgreSQL, --driver kubernetes) and a gateway
// replica (--role gateway --routes endpointslices) sharing the store and
// the data dir (the secrets key that opens endpoint keys). A deployment
// made through the control replica is scored through the gateway, which
// learns its pods from EndpointSlices; a rolling image update under load
// through the gateway fails no request.
func TestRolesOnKubernetes(t *testing.T) {
	c := k8stest.Shared(t)
	testImages(t, c)
	importPlumblineImage(t, c)
	pg := postgresInCluster(t, c)
	ns := c.Namespace(t)
	control := startServe(t, c, ns, 8446, "--role", "control", "--store", pg, "--replica-id", "control-1")
	gw := runServe(t, c, 8447, control.data, []string{"--data-dir", control.data, "--role", "gateway", "--store", pg, "--replica-id", "gateway-1",
		"--routes", "endpointslices", "--k8s-namespace", ns, "--kubeconfig", c.Kubeconfig})
	caPEM, err := os.ReadFile(filepath.Join(control.data, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get(gw.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-gw.exited:
			b, _ := os.ReadFile(gw.log)
			t.Fatalf("the gateway exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not answer /healthz within a minute: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	must := func(args ...string) string { t.Helper(); return control.must(t, args...) }
	write := fileWriter(t)
	must("online-endpoint", "create", "-f", write("endpoint.yml", "name: rollout\nauth_mode: key\n"))
	must("online-deployment", "create", "-f", write("blue.yml", testServerDeployment("blue", serverImage, "v1", 2)), "--all-traffic")
	key := strings.TrimSpace(must("online-endpoint", "get-credentials", "-n", "rollout", "--query", "primaryKey", "-o", "tsv"))

	// The gateway (another process, its own view of the store) checks the
	// key and routes to the pods its slices list.
	stop := make(chan struct{})
	l := startLoadOf(scorer(t, c, gw, "rollout", key), 3, stop)
	stopLoad := sync.OnceFunc(func() { close(stop); <-l.done })
	defer stopLoad()
	l.waitCount(t, "blue/v1")
	begin := time.Now()
	must("online-deployment", "update", "-f", write("blue-v2.yml", testServerDeployment("blue", serverImageV2, "v2", 2)))
	t.Logf("rolling update through the control replica: Succeeded in %s", time.Since(begin).Round(100*time.Millisecond))
	l.waitCount(t, "blue/v2")
	time.Sleep(3 * time.Second) // the old pods end while the load goes on
	stopLoad()
	t.Logf("through the gateway replica: answers by deployment/template %v; failed: %d", l.counts(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed: %v", n, l.failureList())
	}
	if l.bounded.Load() {
		t.Errorf("the load ended on its bound, not when the test stopped it")
	}
	if b, _ := os.ReadFile(gw.log); !bytes.Contains(b, []byte("gateway routes from EndpointSlices")) {
		t.Errorf("the gateway did not say it routes from EndpointSlices:\n%s", b)
	}
	out, _ := c.Kubectl(context.Background(), "-n", ns, "get", "endpointslices", "-o", "wide")
	t.Logf("kubectl get endpointslices:\n%s", out)
}
