package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func coldDep(maxConc int, wait time.Duration, starting int, onDemand bool, maxPending int, names ...string) *Deployment {
	d := poolDep(maxConc, wait, names...)
	d.Starting, d.OnDemand, d.MaxPending = starting, onDemand, maxPending
	return d
}

func testPoolMetrics(t *testing.T) (*poolMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.forPool("ep", "blue"), reg
}

// A deployment with no instance that starts one on demand holds the
// request (no 503) and wakes the reporter; when the instance is ready the
// request gets it, and the cold start is measured.
func TestPoolHoldsWhileCold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pm, reg := testPoolMetrics(t)
		p := newPool("ep", "blue", pm)
		var woken atomic.Int32
		p.wake = func() { woken.Add(1) }
		p.update(coldDep(1, 0, 0, true, 4))
		ctx, cancel := context.WithTimeoutCause(context.Background(), 5*time.Second, errRequestTimeout)
		defer cancel()
		ch := acquireAsync(p, ctx)
		synctest.Wait()
		select {
		case r := <-ch:
			t.Fatalf("a cold request was answered at once: %v", r.err)
		default:
		}
		if woken.Load() != 1 {
			t.Errorf("wake called %d times, want once", woken.Load())
		}
		if d := p.demand(time.Now()); d.Queued != 1 || d.Ready != 0 || d.Arrivals != 1 {
			t.Errorf("demand while cold %+v, want 1 queued, 0 ready, 1 arrival", d)
		}
		time.Sleep(1500 * time.Millisecond) // the instance starts
		p.update(coldDep(1, 0, 0, true, 4, "a"))
		r := <-ch
		if r.err != nil || r.in.name != "a" {
			t.Fatalf("after the instance became ready: %v on %v, want instance a", r.err, r.in)
		}
		p.release(r.in)
		lbl := map[string]string{"endpoint": "ep", "deployment": "blue"}
		if n := metricValue(t, reg, "plumbline_cold_start_seconds", lbl); n != 1 {
			t.Errorf("cold starts observed: %v, want 1", n)
		}
		if n := metricValue(t, reg, "plumbline_capacity_wait_seconds", lbl); n != 1 {
			t.Errorf("capacity waits observed: %v, want 1", n)
		}
		if p.lastCold != 1500*time.Millisecond {
			t.Errorf("cold start measured %v, want 1.5s (fake clock)", p.lastCold)
		}
	})
}

// The deadline of a request waiting for a cold start is a 503 with a
// Retry-After from the last cold start; max_queue_wait_ms does not bound a
// wait for an instance that is starting.
func TestPoolColdDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(coldDep(1, 500*time.Millisecond, 1, false, 0)) // one instance starting
		ctx, cancel := context.WithTimeoutCause(context.Background(), 2*time.Second, errRequestTimeout)
		defer cancel()
		_, err := p.acquire(ctx)
		var cse *coldStartError
		if !errors.As(err, &cse) || cse.retryAfter != time.Second {
			t.Fatalf("deadline while cold: got %v, want a cold-start error retrying after 1s", err)
		}
		// A cold start that took 4 s makes the next estimate 4 s, less
		// the time already waited.
		p.mu.Lock()
		p.lastCold, p.coldSince = 4*time.Second, time.Time{}
		p.mu.Unlock()
		ctx2, cancel2 := context.WithTimeoutCause(context.Background(), time.Second, errRequestTimeout)
		defer cancel2()
		_, err = p.acquire(ctx2)
		if !errors.As(err, &cse) || cse.retryAfter != 3*time.Second {
			t.Fatalf("after waiting 1 s of a cold start that took 4 s last time: got %v (retry after %v), want 3 s", err, cse.retryAfter)
		}
		if rep := replyFor(err); rep.status != http.StatusServiceUnavailable || !rep.retryAfter || rep.retrySeconds < 1 {
			t.Errorf("reply %+v, want 503 with Retry-After", rep)
		}
	})
}

// Starting instances count toward Azure's bound as ready ones do; when
// nothing is starting any more and nothing is ready, the queue fails with
// 503 at once.
func TestPoolStartingInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(coldDep(1, 0, 1, false, 0)) // bound 2 × 1 × 1
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, b := acquireAsync(p, ctx), acquireAsync(p, ctx)
		synctest.Wait()
		if _, err := p.acquire(ctx); !errors.Is(err, errQueueFull) {
			t.Errorf("third request with one instance starting: %v, want errQueueFull", err)
		}
		p.update(coldDep(1, 0, 0, false, 0)) // the start failed: nothing is coming
		for _, ch := range []chan result{a, b} {
			if r := <-ch; !errors.Is(r.err, errNoInstance) {
				t.Errorf("queued request after the start failed: %v, want errNoInstance", r.err)
			}
		}
	})
}

// An autoscaled deployment admits up to MaxPending, more than its ready
// instances hold, and refuses past it with 429.
func TestPoolMaxPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(coldDep(1, 0, 0, true, 5, "a"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var chans []chan result
		for range 5 {
			chans = append(chans, acquireAsync(p, ctx))
			synctest.Wait()
		}
		if _, err := p.acquire(ctx); !errors.Is(err, errQueueFull) {
			t.Errorf("sixth request with max pending 5: %v, want errQueueFull", err)
		}
		if s := p.stats(); s.InFlight != 1 || s.Queued != 4 {
			t.Errorf("got %d in flight, %d queued; want 1 and 4", s.InFlight, s.Queued)
		}
		cancel()
		for _, ch := range chans {
			if r := <-ch; r.err == nil {
				p.release(r.in)
			}
		}
	})
}

// Demand integrates requests in flight and queued over time and counts
// arrivals, refused ones included.
func TestPoolDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(1, 0, "a", "b"))
		start := p.demand(time.Now())
		x, y := mustAcquire(t, p), mustAcquire(t, p)
		time.Sleep(3 * time.Second) // 2 in flight for 3 s
		p.release(x)
		time.Sleep(2 * time.Second) // 1 in flight for 2 s
		p.release(y)
		time.Sleep(time.Second)
		d := p.demand(time.Now())
		if got := d.Busy - start.Busy; got != 8 {
			t.Errorf("busy %v request-seconds, want 2×3 + 1×2 = 8", got)
		}
		if d.Arrivals != 2 || !d.Since.Equal(start.Since) || d.InFlight != 0 || d.Ready != 2 {
			t.Errorf("demand %+v, want 2 arrivals, the same since, nothing in flight, 2 ready", d)
		}
		p.update(poolDep(1, 0))
		if _, err := p.tryAcquire(time.Now()); !errors.Is(err, errNoInstance) {
			t.Fatalf("got %v", err)
		}
		if d := p.demand(time.Now()); d.Arrivals != 3 {
			t.Errorf("arrivals %d, want a refused request counted too (3)", d.Arrivals)
		}
	})
}

// Through HTTP: a cold deployment answers once its instance is ready; a
// burst past max pending gets 429 with Retry-After; the gateway's demand
// names the deployment; a request at zero makes Follow report at once.
func TestGatewayColdStart(t *testing.T) {
	g, _, front := newTestGateway(t, Config{})
	addr := okBackend(t, `{"ok":true}`)
	d := coldDep(1, 0, 0, true, 3)
	d.RequestTimeout = 10 * time.Second
	g.Update(snapshot(endpoint("ep", d)))
	src := &demandSource{reports: make(chan map[string]Demand, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Follow(ctx, src, nil) }()
	defer func() { cancel(); <-done }()

	var wg sync.WaitGroup
	codes := make(chan int, 5)
	retry := make(chan string, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, _ := call(t, front, http.MethodPost, "/endpoints/ep/score", bearer(testKey), `{}`)
			codes <- res.StatusCode
			retry <- res.Header.Get("Retry-After")
		}()
	}
	// The first waiter wakes the reporter: a report with it queued and no
	// instance ready arrives without waiting for the report interval.
	waitFor(t, "a report of the waiting requests", func() bool {
		select {
		case dm := <-src.reports:
			x := dm["ep/blue"]
			return x.Queued >= 1 && x.Ready == 0
		default:
			return false
		}
	})
	// Three held and the two past the bound answered before an instance
	// is ready (else a late arrival would find the instance up).
	waitFor(t, "three requests held, two refused", func() bool {
		return g.Demand()["ep/blue"].Queued == 3 && len(codes) == 2
	})
	up := coldDep(1, 0, 0, true, 3)
	up.RequestTimeout = 10 * time.Second
	up.Instances = []Instance{{Name: "blue-0", Addr: addr}}
	g.Update(snapshot(endpoint("ep", up)))
	wg.Wait()
	close(codes)
	close(retry)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[http.StatusOK] != 3 || got[http.StatusTooManyRequests] != 2 {
		t.Errorf("5 requests at a cold deployment holding 3: got %v, want 3 × 200 and 2 × 429", got)
	}
	n := 0
	for r := range retry {
		if r != "" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d answers with Retry-After, want the 2 refused ones", n)
	}
}

// demandSource is a RouteSource that records the demand of each report.
type demandSource struct {
	reports chan map[string]Demand
}

func (s *demandSource) Routes(ctx context.Context, after int64) (*Snapshot, int64, error) {
	<-ctx.Done()
	return nil, 0, ctx.Err()
}

func (s *demandSource) Report(context.Context, map[string]int) error {
	return errors.New("Follow must use ReportDemand")
}

func (s *demandSource) ReportDemand(_ context.Context, _ map[string]int, d map[string]Demand) error {
	select {
	case s.reports <- d:
	default:
	}
	return nil
}

// A request whose deadline passes at a cold deployment gets 503 with
// Retry-After and a message that says why.
func TestGatewayColdDeadline(t *testing.T) {
	g, _, front := newTestGateway(t, Config{})
	d := coldDep(1, 0, 1, false, 0)
	d.RequestTimeout = 200 * time.Millisecond
	g.Update(snapshot(endpoint("ep", d)))
	res, body := call(t, front, http.MethodPost, "/endpoints/ep/score", bearer(testKey), `{}`)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || !strings.Contains(body, "starting an instance") {
		t.Errorf("cold deadline: got %d Retry-After %q %s, want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
}
