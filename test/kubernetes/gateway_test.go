package kubernetes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/kubernetes"
	"github.com/plumbline/plumbline/internal/endpointslices"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/k8stest"
)

const (
	serverImage   = "localhost/plumbline-test/testserver:k8s"
	serverImageV2 = "localhost/plumbline-test/testserver:k8s-v2"
	endpointKey   = "k8s-test-key"
)

var (
	imagesOnce sync.Once
	imagesErr  error
)

// testImages imports the conformance test server under two tags (a
// "new image" for rolling updates).
func testImages(t *testing.T, c *k8stest.Cluster) {
	t.Helper()
	imagesOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "..", "..", "internal", "driver", "drivertest", "testdata", "testserver")
		for _, ref := range []string{serverImage, serverImageV2} {
			tar, err := k8stest.GoBinaryImage(ref, "testserver", src)
			if err != nil {
				imagesErr = err
				return
			}
			if imagesErr = c.ImportImage(context.Background(), tar); imagesErr != nil {
				return
			}
		}
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
}

func serverDeployment(endpoint, name, image, template string, replicas int) driver.DeploymentSpec {
	return driver.DeploymentSpec{
		Endpoint: endpoint, Deployment: name,
		Template: driver.InstanceSpec{
			Runtime: driver.RuntimeGeneric, Image: image, Port: 5001,
			Command:  []string{"/testserver", "-host", "0.0.0.0", "-port", "{port}"},
			Env:      map[string]string{"DEPLOYMENT": name, "TEMPLATE": template},
			Template: template, MemoryBytes: 64 << 20,
		},
		Replicas:         replicas,
		Readiness:        driver.Probe{Path: "/ready", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1},
		Liveness:         driver.Probe{Path: "/live", InitialDelay: 2 * time.Second, Period: 5 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
		RequestCPU:       0.01,
		TerminationGrace: 2 * time.Second,
	}
}

// fed is a real gateway whose instances come from EndpointSlices and whose
// endpoints and traffic come from the test (in place of the control plane).
type fed struct {
	gw  *gateway.Gateway
	src *endpointslices.Source
	url string

	mu   sync.Mutex
	base *gateway.Snapshot
}

func (f *fed) setTraffic(traffic map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ep := *f.base.Endpoints["e1"]
	ep.Traffic = traffic
	f.base = &gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{"e1": &ep}}
	f.gw.Update(f.src.Table().Fill(f.base))
}

func newFed(t *testing.T, c *k8stest.Cluster, ns string, deployments ...string) *fed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src := endpointslices.New(c.Client, ns, nil)
	if err := src.Run(ctx); err != nil {
		t.Fatal(err)
	}
	tr := gateway.NewUpstreamTransport()
	tr.DialContext = c.DialContext // the pods are inside the cluster's network namespace
	gw, err := gateway.New(gateway.Config{Transport: tr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string]*gateway.Deployment{}
	traffic := map[string]int{}
	for i, d := range deployments {
		deps[d] = &gateway.Deployment{Name: d, ScoringPath: "/score", MaxConcurrentPerInstance: 2, RequestTimeout: 10 * time.Second}
		if i == 0 {
			traffic[d] = 100
		}
	}
	f := &fed{gw: gw, src: src, base: &gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{
		"e1": {Name: "e1", AuthMode: "key", Keys: []string{endpointKey, ""}, Traffic: traffic, Deployments: deps},
	}}}
	apply := func() {
		f.mu.Lock()
		gw.Update(src.Table().Fill(f.base))
		f.mu.Unlock()
	}
	apply()
	go func() {
		for {
			ch := src.Changed()
			select {
			case <-ctx.Done():
				return
			case <-ch:
				apply()
			}
		}
	}()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// score sends one scoring request through the gateway; it returns the
// status and the variables the pod reports.
func (f *fed) score(hc *http.Client, header map[string]string) (int, map[string]string, error) {
	body, _ := json.Marshal(map[string]any{"env": []string{"HOSTNAME", "DEPLOYMENT", "TEMPLATE"}})
	req, _ := http.NewRequest("POST", f.url+"/endpoints/e1/score", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+endpointKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	if resp.StatusCode == http.StatusOK {
		json.Unmarshal(b, &out)
	} else {
		out["body"] = string(b)
	}
	return resp.StatusCode, out, nil
}

// load sends requests from workers until stop is closed (or limit
// requests), counting answers by status and by what answered.
type load struct {
	ok, failed atomic.Int64
	bounded    atomic.Bool // a worker ended on the count or time bound, not on stop
	mu         sync.Mutex
	by         map[string]int // DEPLOYMENT/TEMPLATE → count
	failures   []string
	done       chan struct{}
}

func startLoad(f *fed, workers int, stop <-chan struct{}) *load {
	hc := &http.Client{Timeout: 15 * time.Second}
	return startLoadOf(func() (int, map[string]string, error) { return f.score(hc, nil) }, workers, stop)
}

// startLoadOf sends requests with score from workers until stop is closed
// (or its bounds: 500 000 requests, 4 minutes); score returns the status
// and the variables the pod reported (DEPLOYMENT, TEMPLATE).
func startLoadOf(score func() (int, map[string]string, error), workers int, stop <-chan struct{}) *load {
	l := &load{by: map[string]int{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	// Bounded in count and time; the test stops it sooner.
	const limit = 500000
	deadline := time.Now().Add(4 * time.Minute)
	var sent atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				select {
				case <-stop:
				default:
					l.bounded.Store(true)
				}
			}()
			for sent.Add(1) <= limit && time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				code, got, err := score()
				if err != nil || code != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						l.failures = append(l.failures, fmt.Sprintf("%d %v %v", code, got, err))
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.by[got["DEPLOYMENT"]+"/"+got["TEMPLATE"]]++
				l.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *load) failureList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

func (l *load) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.by {
		out[k] = v
	}
	return out
}

func newDriver(t *testing.T, c *k8stest.Cluster, ns string) *kubernetes.Driver {
	t.Helper()
	d, err := kubernetes.New(t.Context(), kubernetes.Config{
		REST: c.Config, Namespace: ns, Owner: "gateway-test", ImagePullPolicy: corev1.PullIfNotPresent,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func waitAvailable(t *testing.T, d *kubernetes.Driver, endpoint, deployment, template string, ready int) driver.DeploymentStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := d.ObserveDeployment(t.Context(), endpoint, deployment)
		if err == nil && st.State == driver.DeploymentAvailable && st.Template == template && st.Ready == ready && len(st.Instances) == ready {
			return st
		}
		if err == nil && st.State == driver.DeploymentFailed {
			t.Fatalf("%s/%s failed: %s: %s", endpoint, deployment, st.Reason, st.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s not Available with %d ready pods of %s: %+v, %v", endpoint, deployment, ready, template, st, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitTable waits until the gateway's table lists n ready pods of
// endpoint/deployment.
func waitTable(t *testing.T, f *fed, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(f.src.Table()[key]) != n {
		if time.Now().After(deadline) {
			t.Fatalf("table[%s] = %v, want %d ready pods", key, f.src.Table()[key], n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayOnEndpointSlices: requests flow through a gateway fed by
// EndpointSlices to real pods; a pod that leaves (deleted, replaced by a
// rolling image update) leaves the table before it stops serving; a
// blue/green shift and a rolling image update under load fail no request.
func TestGatewayOnEndpointSlices(t *testing.T) {
	c := k8stest.Shared(t)
	testImages(t, c)
	ns := c.Namespace(t)
	d := newDriver(t, c, ns)
	ctx := t.Context()

	if err := d.ApplyDeployment(ctx, serverDeployment("e1", "blue", serverImage, "t1:blue-1", 2)); err != nil {
		t.Fatal(err)
	}
	st := waitAvailable(t, d, "e1", "blue", "t1:blue-1", 2)
	f := newFed(t, c, ns, "blue", "green")
	waitTable(t, f, "e1/blue", 2)

	t.Run("RequestsReachEveryReadyPod", func(t *testing.T) {
		hc := &http.Client{Timeout: 15 * time.Second}
		pods := map[string]int{}
		for range 40 {
			code, got, err := f.score(hc, nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("score through the gateway = %d %v %v", code, got, err)
			}
			pods[got["HOSTNAME"]]++
		}
		for _, in := range st.Instances {
			if pods[in.Name] == 0 {
				t.Errorf("pod %s got no request; answers by pod: %v", in.Name, pods)
			}
		}
		t.Logf("40 requests through the gateway, by pod: %v", pods)
		// The gateway keeps one slot pool per pod, named by the pod.
		for _, s := range f.gw.Stats() {
			if s.Deployment == "blue" && (s.Ready != 2 || len(s.Instances) != 2) {
				t.Errorf("gateway stats for blue = %+v, want 2 instances", s)
			}
		}
	})

	t.Run("DeletedPodLeavesBeforeItStops", func(t *testing.T) {
		stop := make(chan struct{})
		l := startLoad(f, 3, stop)
		time.Sleep(time.Second)
		victim := st.Instances[0]
		if err := d.Stop(ctx, victim.ID, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			gone := true
			for _, in := range f.src.Table()["e1/blue"] {
				if in.Name == victim.Name {
					gone = false
				}
			}
			if gone {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s still in the gateway's table 10 s after its deletion", victim.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitAvailable(t, d, "e1", "blue", "t1:blue-1", 2)
		waitTable(t, f, "e1/blue", 2)
		time.Sleep(time.Second)
		close(stop)
		<-l.done
		if l.bounded.Load() {
			t.Fatal("the load reached its bound before the test stopped it")
		}
		if l.failed.Load() != 0 || l.ok.Load() == 0 {
			t.Errorf("while a pod was deleted and replaced: %d answered, %d failed: %v", l.ok.Load(), l.failed.Load(), l.failures)
		}
		t.Logf("pod deleted and replaced under load: %d answered 200, %d failed", l.ok.Load(), l.failed.Load())
	})

	t.Run("RollingImageUpdateUnderLoad", func(t *testing.T) {
		stop := make(chan struct{})
		l := startLoad(f, 3, stop)
		time.Sleep(time.Second)
		begin := time.Now()
		if err := d.ApplyDeployment(ctx, serverDeployment("e1", "blue", serverImageV2, "t1:blue-2", 2)); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, d, "e1", "blue", "t1:blue-2", 2)
		took := time.Since(begin)
		waitTable(t, f, "e1/blue", 2)
		time.Sleep(2 * time.Second)
		close(stop)
		<-l.done
		if l.bounded.Load() {
			t.Fatal("the load reached its bound before the test stopped it")
		}
		by := l.counts()
		if l.failed.Load() != 0 {
			t.Errorf("rolling image update: %d failed requests: %v", l.failed.Load(), l.failures)
		}

		if by["blue/t1:blue-1"] == 0 || by["blue/t1:blue-2"] == 0 {
			t.Errorf("answers by template = %v, want both the old and the new image to have answered", by)
		}
		t.Logf("rolling image update %s → %s under load in %s: %d answered 200, %d failed; by template %v",
			serverImage, serverImageV2, took.Round(100*time.Millisecond), l.ok.Load(), l.failed.Load(), by)
	})

	t.Run("BlueGreenShiftUnderLoad", func(t *testing.T) {
		if err := d.ApplyDeployment(ctx, serverDeployment("e1", "green", serverImageV2, "t1:green-1", 1)); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, d, "e1", "green", "t1:green-1", 1)
		waitTable(t, f, "e1/green", 1)
		stop := make(chan struct{})
		l := startLoad(f, 3, stop)
		for _, split := range []map[string]int{{"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"green": 100}} {
			f.setTraffic(split)
			time.Sleep(1500 * time.Millisecond)
		}
		after := l.counts()["blue/t1:blue-2"]
		time.Sleep(time.Second)
		if err := d.DeleteDeployment(ctx, "e1", "blue"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		close(stop)
		<-l.done
		if l.bounded.Load() {
			t.Fatal("the load reached its bound before the test stopped it")
		}
		by := l.counts()
		if l.failed.Load() != 0 {
			t.Errorf("blue/green shift: %d failed requests: %v", l.failed.Load(), l.failures)
		}
		if by["green/t1:green-1"] == 0 || by["blue/t1:blue-2"] != after {
			t.Errorf("answers = %v; want green answering, and blue nothing once green has 100%%", by)
		}
		t.Logf("blue/green 100/0 → 90/10 → 50/50 → 0/100, then blue deleted, under load: %d answered 200, %d failed; by deployment %v",
			l.ok.Load(), l.failed.Load(), by)
	})
}
