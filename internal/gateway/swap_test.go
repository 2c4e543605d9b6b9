package gateway

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Changing traffic, instances and limits while requests run drops none.
func TestSnapshotSwapDropsNothing(t *testing.T) {
	var served atomic.Int64
	slow := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(5 * time.Millisecond)
		served.Add(1)
		_, _ = io.WriteString(w, "{}")
	}
	b0, b1, g0 := backend(t, slow), backend(t, slow), backend(t, slow)
	build := func(blueAddrs []string, maxConc, bluePct int) *Snapshot {
		blue := dep("blue", blueAddrs...)
		blue.MaxConcurrentPerInstance = maxConc
		green := dep("green", g0)
		green.MaxConcurrentPerInstance = maxConc
		ep := endpoint("ep", blue, green)
		ep.Traffic = map[string]int{"blue": bluePct, "green": 100 - bluePct}
		return snapshot(ep)
	}
	// Every step keeps room for all clients (2 × max × instances >= clients),
	// so any non-200 is a dropped request, not an overload.
	const clients, perClient = 8, 20
	steps := []*Snapshot{
		build([]string{b0}, 4, 100),     // b1 removed
		build([]string{b0, b1}, 4, 50),  // b1 back, traffic split
		build([]string{b1}, 8, 0),       // b0 removed, all to green, limit raised
		build([]string{b0, b1}, 4, 90),  // limit lowered
		build([]string{b0}, 4, 100),     // b1 removed again
		build([]string{b0, b1}, 16, 10), // everything changes at once
	}
	g, _, front := newTestGateway(t, Config{})
	g.Update(build([]string{b0, b1}, 4, 100))

	stop := make(chan struct{})
	var swaps sync.WaitGroup
	swaps.Add(1)
	go func() {
		defer swaps.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				g.Update(steps[i%len(steps)])
			}
		}
	}()

	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstFailure atomic.Value
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"x":1}`)
				if res.StatusCode != 200 {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, res.Status+" "+body)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	swaps.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("got %d failed requests during snapshot swaps, want 0; first: %v", n, firstFailure.Load())
	}
	if got := served.Load(); got != clients*perClient {
		t.Errorf("backends served %d, want %d", got, clients*perClient)
	}
	for _, s := range g.Stats() {
		if s.InFlight != 0 || s.Queued != 0 {
			t.Errorf("%s/%s: got %d in flight and %d queued after the run, want 0", s.Endpoint, s.Deployment, s.InFlight, s.Queued)
		}
	}
}

// A deployment removed from the snapshot finishes the request it is serving,
// and InFlight reports it until then.
func TestDeploymentRemovedInFlight(t *testing.T) {
	gt := newGate()
	blueAddr := backend(t, gt.ServeHTTP)
	greenAddr := okBackend(t, `{"green":true}`)
	g, reg, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", blueAddr), dep("green", greenAddr))))

	done := make(chan int, 1)
	go func() {
		res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
		done <- res.StatusCode
	}()
	<-gt.arrived
	if got := g.InFlight("ep", "blue", "blue-0"); got != 1 {
		t.Fatalf("InFlight before removal: got %d, want 1", got)
	}
	if got := metricValue(t, reg, "plumbline_inflight_requests", map[string]string{"endpoint": "ep", "deployment": "blue"}); got != 1 {
		t.Errorf("plumbline_inflight_requests: got %v, want 1", got)
	}

	g.Update(snapshot(endpoint("ep", dep("green", greenAddr))))
	if got := g.InFlight("ep", "blue", "blue-0"); got != 1 {
		t.Errorf("InFlight after removal: got %d, want 1", got)
	}
	if res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}"); res.StatusCode != 200 || body != `{"green":true}` {
		t.Errorf("new request: got %d %q, want 200 from green", res.StatusCode, body)
	}
	close(gt.release)
	if code := <-done; code != 200 {
		t.Errorf("in-flight request on the removed deployment: got %d, want 200", code)
	}
	waitFor(t, "blue to drain", func() bool { return g.InFlight("ep", "blue", "blue-0") == 0 })
	if got := metricValue(t, reg, "plumbline_ready_instances", map[string]string{"endpoint": "ep", "deployment": "blue"}); got != 0 {
		t.Errorf("ready gauge of a removed deployment: got %v, want it gone", got)
	}
}

func TestStats(t *testing.T) {
	g, _, _ := newTestGateway(t, Config{})
	d := dep("blue", "127.0.0.1:1", "127.0.0.1:2")
	d.MaxConcurrentPerInstance = 3
	g.Update(snapshot(endpoint("ep", d)))
	s := g.Stats()
	if len(s) != 1 {
		t.Fatalf("got %d deployments, want 1", len(s))
	}
	if s[0].Endpoint != "ep" || s[0].Deployment != "blue" || s[0].Capacity != 12 || len(s[0].Instances) != 2 {
		t.Errorf("got %+v, want ep/blue, capacity 12, 2 instances", s[0])
	}
}
