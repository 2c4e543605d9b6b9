package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/plumbline/plumbline/internal/gateway/h1"
)

const testKey = "primary-key-0123456789"

// newTestGateway returns a gateway on a private registry and a frontend
// server in front of it.
func newTestGateway(t *testing.T, cfg Config) (*Gateway, *prometheus.Registry, *httptest.Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Registerer == nil {
		cfg.Registerer = reg
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	front := newFront(g)
	t.Cleanup(front.Close)
	return g, reg, front
}

// frontHTTP1 is how newTestGateway's front server serves HTTP/1.1: "std"
// (net/http's server) or "fast" (the h1 loop, as plumbline serve --http1
// fast). TestMain runs the package's tests once with each.
var frontHTTP1 = "std"

// newFront starts a front server for g.
func newFront(g *Gateway) *httptest.Server {
	if frontHTTP1 != "fast" {
		return httptest.NewServer(g)
	}
	s := httptest.NewUnstartedServer(g)
	l := h1.NewListener(s.Listener, s.Config, g.Scoring)
	fastFronts.Lock()
	fastFronts.l = append(fastFronts.l, l)
	fastFronts.Unlock()
	s.Listener = l
	s.Start()
	return s
}

// fastFronts are the h1 loops newFront started, for TestMain to check that
// they served the requests.
var fastFronts struct {
	sync.Mutex // protects l
	l          []*h1.Listener
}

// backend starts an httptest server and returns its host:port.
func backend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// okBackend answers 200 with the deployment name it was given.
func okBackend(t *testing.T, body string) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func dep(name string, addrs ...string) *Deployment {
	d := &Deployment{
		Name:                     name,
		ScoringPath:              "/score",
		RequestTimeout:           10 * time.Second,
		MaxConcurrentPerInstance: 4,
	}
	for i, a := range addrs {
		d.Instances = append(d.Instances, Instance{Name: name + "-" + string(rune('0'+i)), Addr: a})
	}
	return d
}

// endpoint builds a key-mode endpoint; traffic goes 100 % to the first
// deployment unless changed.
func endpoint(name string, deps ...*Deployment) *Endpoint {
	ep := &Endpoint{
		Name:        name,
		AuthMode:    "key",
		Keys:        []string{testKey, ""},
		Traffic:     map[string]int{},
		Mirror:      map[string]int{},
		Deployments: map[string]*Deployment{},
	}
	for i, d := range deps {
		ep.Deployments[d.Name] = d
		if i == 0 {
			ep.Traffic[d.Name] = 100
		} else {
			ep.Traffic[d.Name] = 0
		}
	}
	return ep
}

func snapshot(eps ...*Endpoint) *Snapshot {
	s := &Snapshot{Endpoints: map[string]*Endpoint{}}
	for _, ep := range eps {
		s.Endpoints[ep.Name] = ep
	}
	return s
}

// call sends one request through the frontend.
func call(t *testing.T, front *httptest.Server, method, path string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, front.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := front.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// metricValue returns the value of the counter or gauge name with exactly
// labels, or 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// gate is a backend that holds every request until released, counting how
// many it holds at once.
type gate struct {
	mu      sync.Mutex
	active  int
	maxSeen int
	total   int
	arrived chan struct{} // one send per arrival
	release chan struct{} // closed to let every request finish
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // so that net/http watches for a cancel
	g.mu.Lock()
	g.active++
	g.total++
	g.maxSeen = max(g.maxSeen, g.active)
	g.mu.Unlock()
	g.arrived <- struct{}{}
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (g *gate) stats() (maxSeen, total int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxSeen, g.total
}

// waitFor polls cond until it holds or 10 s pass. It waits for an event; it
// does not assert on timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
