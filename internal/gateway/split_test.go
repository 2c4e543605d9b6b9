package gateway

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUpstream is an in-process RoundTripper answering 200 at once and
// counting requests by instance address. It stands in for the network only
// where a test needs thousands of requests.
type fakeUpstream struct {
	mu     sync.Mutex
	byHost map[string]int
}

func (f *fakeUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	f.mu.Lock()
	if f.byHost == nil {
		f.byHost = map[string]int{}
	}
	f.byHost[req.URL.Host]++
	f.mu.Unlock()
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), ContentLength: 2, Request: req,
	}, nil
}

func (f *fakeUpstream) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byHost[host]
}

func serve(g *Gateway, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/endpoints/ep/score", strings.NewReader(`{"x":1}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

// roomy is a deployment whose limits never get in the way of a statistical test.
func roomy(name, addr string) *Deployment {
	d := dep(name, addr)
	d.MaxConcurrentPerInstance = 1 << 16
	return d
}

func TestTrafficSplit(t *testing.T) {
	const n = 10000
	tests := []struct {
		name    string
		traffic map[string]int
	}{
		{"90/10", map[string]int{"blue": 90, "green": 10}},
		{"50/50", map[string]int{"blue": 50, "green": 50}},
		{"100/0", map[string]int{"blue": 100, "green": 0}},
		{"0/100", map[string]int{"blue": 0, "green": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeUpstream{}
			g, _, _ := newTestGateway(t, Config{Transport: up})
			ep := endpoint("ep", roomy("blue", "blue:1"), roomy("green", "green:1"))
			ep.Traffic = tt.traffic
			g.Update(snapshot(ep))
			got := map[string]int{}
			for range n {
				rec := serve(g, nil)
				if rec.Code != 200 {
					t.Fatalf("status: got %d, want 200", rec.Code)
				}
				got[rec.Header().Get("Azureml-Model-Deployment")]++
			}
			for name, pct := range tt.traffic {
				share := 100 * float64(got[name]) / n
				if math.Abs(share-float64(pct)) > 2 {
					t.Errorf("%s: got %.2f %%, want %d ± 2", name, share, pct)
				}
				if up.count(name+":1") != got[name] {
					t.Errorf("%s: upstream saw %d, responses say %d", name, up.count(name+":1"), got[name])
				}
			}
		})
	}
}

func TestMirrorShare(t *testing.T) {
	const n = 10000
	up := &fakeUpstream{}
	g, reg, _ := newTestGateway(t, Config{Transport: up, MirrorQueue: n})
	ep := endpoint("ep", roomy("blue", "blue:1"), roomy("green", "green:1"))
	ep.Mirror["green"] = 10
	g.Update(snapshot(ep))
	for range n {
		if rec := serve(g, nil); rec.Code != 200 || rec.Header().Get("Azureml-Model-Deployment") != "blue" {
			t.Fatalf("live: got %d from %q, want 200 from blue", rec.Code, rec.Header().Get("Azureml-Model-Deployment"))
		}
	}
	// Directed requests are never mirrored.
	for range 500 {
		serve(g, map[string]string{"azureml-model-deployment": "blue"})
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	labels := func(result string) map[string]string {
		return map[string]string{"endpoint": "ep", "deployment": "green", "result": result}
	}
	sent := metricValue(t, reg, "plumbline_mirrored_requests_total", labels("sent"))
	dropped := metricValue(t, reg, "plumbline_mirrored_requests_total", labels("dropped"))
	failed := metricValue(t, reg, "plumbline_mirrored_requests_total", labels("error"))
	if share := 100 * (sent + dropped + failed) / n; math.Abs(share-10) > 2 {
		t.Errorf("mirrored share: got %.2f %%, want 10 ± 2", share)
	}
	if dropped != 0 || failed != 0 {
		t.Errorf("mirror results: got %v dropped and %v errors, want none", dropped, failed)
	}
	if got := up.count("green:1"); float64(got) != sent {
		t.Errorf("green saw %d requests; metrics say %v sent", got, sent)
	}
	if got := up.count("blue:1"); got != n+500 {
		t.Errorf("blue saw %d requests, want %d", got, n+500)
	}
}

// A slow or failing mirror deployment never delays or fails live requests;
// what it does is counted.
func TestMirrorIsolation(t *testing.T) {
	tests := []struct {
		name string
		slow bool
	}{
		{"slow mirror", true},
		{"failing mirror", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gt *gate
			var mirrorAddr string
			if tt.slow {
				gt = newGate()
				mirrorAddr = backend(t, gt.ServeHTTP)
			} else {
				mirrorAddr = backend(t, func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					http.Error(w, "shadow broke", http.StatusInternalServerError)
				})
			}
			live := okBackend(t, `{"live":true}`)
			green := dep("green", mirrorAddr)
			green.MaxConcurrentPerInstance = 1
			g, reg, front := newTestGateway(t, Config{MirrorQueue: 4})
			ep := endpoint("ep", dep("blue", live), green)
			ep.Mirror["green"] = 100
			g.Update(snapshot(ep))

			const n = 20
			for i := range n {
				res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"i":1}`)
				if res.StatusCode != 200 || body != `{"live":true}` {
					t.Fatalf("live request %d: got %d %q, want 200 from blue", i, res.StatusCode, body)
				}
			}
			if gt != nil {
				close(gt.release)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := g.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			get := func(result string) float64 {
				return metricValue(t, reg, "plumbline_mirrored_requests_total",
					map[string]string{"endpoint": "ep", "deployment": "green", "result": result})
			}
			sent, dropped, failed := get("sent"), get("dropped"), get("error")
			if sent+dropped+failed != n {
				t.Errorf("mirror results: got sent %v + dropped %v + error %v, want %d in all", sent, dropped, failed, n)
			}
			if tt.slow {
				if sent < 1 || dropped < 1 || failed != 0 {
					t.Errorf("slow mirror: got sent %v, dropped %v, error %v; want some sent, some dropped, no errors", sent, dropped, failed)
				}
				if maxSeen, _ := gt.stats(); maxSeen != 1 {
					t.Errorf("mirror backend held %d requests at once, want 1 (its limit applies to shadow traffic)", maxSeen)
				}
			} else if failed < 1 || sent != 0 {
				// Copies beyond the small backlog may be dropped; none succeeds.
				t.Errorf("failing mirror: got sent %v, error %v; want no sends and some errors", sent, failed)
			}
		})
	}
}
