package autoscale

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

var bg = context.Background()

// newStore is a real SQLite store with endpoint ep and deployment blue,
// Succeeded, autoscaled with as.
func newStore(t *testing.T, as resolve.Autoscale, count int) store.Store {
	t.Helper()
	st, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "plumbline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateEndpoint(bg, store.Endpoint{Name: "ep", State: store.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	rec := resolve.Record{Document: []byte(`{}`), Plan: &resolve.Plan{Endpoint: "ep", Deployment: "blue",
		InstanceCount: count, MaxConcurrentPerInstance: 1, Autoscale: &as}}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDeployment(bg, store.Deployment{Endpoint: "ep", Name: "blue", Spec: b, State: store.StateSucceeded, Generation: 1, ObservedGeneration: 1}); err != nil {
		t.Fatal(err)
	}
	return st
}

// ready writes n routable instance rows.
func ready(t *testing.T, st store.Store, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("blue-%d", i)
		if err := st.PutInstance(bg, store.Instance{Endpoint: "ep", Deployment: "blue", Name: name, State: store.InstanceReady, Routable: true, Addr: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
}

// gatewayLoad reports, as gateway id, conc requests in flight for
// deployment ep/blue every interval until ctx ends, with its counters
// integrated on its own clock.
func gatewayLoad(ctx context.Context, t *testing.T, st store.Store, id string, conc float64, interval time.Duration) {
	since := time.Now()
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		elapsed := time.Since(since).Seconds()
		d := store.Demand{InFlight: int(conc), Ready: 1, Arrivals: int64(elapsed * 100), Busy: conc * elapsed, Since: since, At: since.Add(time.Duration(elapsed * float64(time.Second)))}
		if err := st.PutGatewayReport(bg, store.GatewayReport{ID: id, Demand: map[string]store.Demand{"ep/blue": d}}); err != nil && ctx.Err() == nil {
			t.Error(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// run starts a in the background until the test ends.
func run(t *testing.T, a *Autoscaler) {
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); a.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitDesired(t *testing.T, a *Autoscaler, what string, ok func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, known := a.Desired("ep", "blue")
		if known && ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; desired is %d", what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func events(t *testing.T, st store.Store) string {
	t.Helper()
	evs, err := st.ListEvents(bg, store.EventFilter{Endpoint: "ep", Deployment: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s: %s\n", e.Reason, e.Message)
	}
	return b.String()
}

// Two gateways each carrying 3 requests at once scale the deployment to 6
// instances (one alone would ask for 3): the demand of every gateway
// counts. The decision is kept in the store, counted in the metrics and
// told to the reconciler.
func TestGatewaysDemandIsSummed(t *testing.T) {
	as := resolve.Autoscale{MinInstances: 1, MaxInstances: 10, TargetUtilization: 100, PollingInterval: 100 * time.Millisecond,
		StableWindow: time.Second, PanicWindow: 500 * time.Millisecond, PanicThreshold: 200, ScaleToZeroAfter: time.Hour}
	st := newStore(t, as, 1)
	ready(t, st, 1)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	scaled := 0
	a := New(Config{Store: st, Metrics: m, Tick: 50 * time.Millisecond, Scaled: func(e, d string) {
		mu.Lock()
		scaled++
		mu.Unlock()
	}})
	if err := a.Prime(bg); err != nil {
		t.Fatal(err)
	}
	if n, ok := a.Desired("ep", "blue"); !ok || n != 1 {
		t.Fatalf("after Prime: desired %d (%v), want the plan's 1", n, ok)
	}
	run(t, a)
	ctx, cancel := context.WithCancel(bg)
	var wg sync.WaitGroup
	for _, id := range []string{"gw-a", "gw-b"} {
		wg.Add(1)
		go func() { defer wg.Done(); gatewayLoad(ctx, t, st, id, 3, 100*time.Millisecond) }()
	}
	defer func() { cancel(); wg.Wait() }()
	got := waitDesired(t, a, "6 instances for 2 × 3 requests at once", func(n int) bool { return n >= 5 })
	if got > 7 {
		t.Errorf("desired %d for 6 requests at once at a target of one per instance", got)
	}
	sc, err := st.GetScale(bg, "ep", "blue")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Desired < 5 || sc.DecidedAt.IsZero() || !strings.HasPrefix(sc.Decision, "scaled ") {
		t.Errorf("stored scale %+v, want the decision", sc)
	}
	if ev := events(t, st); !strings.Contains(ev, "Scaled: scaled 1 → ") || !strings.Contains(ev, "% > 100 %") {
		t.Errorf("events lack the scale-out:\n%s", ev)
	}
	if v := metricValue(t, reg, "plumbline_desired_instances", "ep", "blue", ""); v < 5 {
		t.Errorf("plumbline_desired_instances %v, want the decision", v)
	}
	if v := metricValue(t, reg, "plumbline_autoscaler_decisions_total", "ep", "blue", "up"); v < 1 {
		t.Errorf("plumbline_autoscaler_decisions_total{direction=up} %v, want at least 1", v)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := scaled
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Scaled was never called")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// min_instances 0: an idle deployment goes to zero after
// scale_to_zero_after; a request waiting at zero brings one back at once,
// without waiting for the polling interval; the events say both.
func TestScaleToZeroAndColdStart(t *testing.T) {
	as := resolve.Autoscale{MinInstances: 0, MaxInstances: 2, TargetUtilization: 70, PollingInterval: time.Hour,
		StableWindow: 200 * time.Millisecond, PanicWindow: 100 * time.Millisecond, PanicThreshold: 200,
		ScaleToZeroAfter: 300 * time.Millisecond}
	st := newStore(t, as, 1)
	ready(t, st, 1)
	a := New(Config{Store: st, Tick: 20 * time.Millisecond})
	run(t, a)
	// A polling interval of an hour: only the first decision and the
	// cold-start path decide. Make it decide by changing the generation.
	time.Sleep(400 * time.Millisecond)
	if _, err := st.UpdateDeployment(bg, "ep", "blue", func(d *store.Deployment) error { d.Generation++; return nil }); err != nil {
		t.Fatal(err)
	}
	waitDesired(t, a, "zero after 300 ms idle", func(n int) bool { return n == 0 })
	if ev := events(t, st); !strings.Contains(ev, "Scaled: scaled 1 → 0: no request for") {
		t.Errorf("events lack the scale to zero:\n%s", ev)
	}
	if err := st.DeleteInstance(bg, "ep", "blue", "blue-0"); err != nil {
		t.Fatal(err)
	}
	// A request waits at a gateway; the gateway's report kicks the
	// autoscaler (the server wires Kick to the report of a cold request).
	err := st.PutGatewayReport(bg, store.GatewayReport{ID: "gw-a", Demand: map[string]store.Demand{"ep/blue": {Queued: 1, Arrivals: 1, Since: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	a.Kick()
	waitDesired(t, a, "one instance for the waiting request", func(n int) bool { return n > 0 })
	if n, _ := a.Desired("ep", "blue"); n != 1 {
		t.Errorf("one request waiting at zero: desired %d, want 1; events:\n%s", n, events(t, st))
	}
	if ev := events(t, st); !strings.Contains(ev, "scaled 0 → 1: 1 request(s) waiting and no instance running (scale from zero)") {
		t.Errorf("events lack the scale from zero:\n%s", ev)
	}
}

// A new leader starts from the last leader's decision and keeps it while
// it knows no history, even with no demand at all.
func TestNewLeaderKeepsTheDecision(t *testing.T) {
	as := resolve.Autoscale{MinInstances: 1, MaxInstances: 10, TargetUtilization: 70, PollingInterval: 50 * time.Millisecond,
		StableWindow: 2 * time.Second, PanicWindow: 200 * time.Millisecond, PanicThreshold: 200, ScaleToZeroAfter: time.Hour}
	st := newStore(t, as, 1)
	ready(t, st, 4)
	if _, err := st.UpdateScale(bg, "ep", "blue", func(sc *store.Scale) error {
		sc.Desired, sc.DecidedAt, sc.Decision = 4, time.Now(), "scaled 3 → 4: utilization 90 % > 70 %"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a := New(Config{Store: st, Tick: 20 * time.Millisecond})
	if err := a.Prime(bg); err != nil {
		t.Fatal(err)
	}
	run(t, a)
	for range 20 {
		if n, _ := a.Desired("ep", "blue"); n != 4 {
			t.Fatalf("within the first stable window with no demand: desired %d, want the last leader's 4", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitDesired(t, a, "back to min_instances once a stable window shows no demand", func(n int) bool { return n < 4 })
}

// A gateway whose counters restart (it was restarted) is a new baseline,
// never a negative load.
func TestRestartedGatewayIsABaseline(t *testing.T) {
	ds := &depScale{seen: map[string]seenDemand{}}
	t0 := time.Now()
	rep := func(at time.Time, since time.Time, busy float64, inflight int) []store.GatewayReport {
		return []store.GatewayReport{{ID: "gw", UpdatedAt: at, Demand: map[string]store.Demand{"ep/blue": {InFlight: inflight, Busy: busy, Since: since}}}}
	}
	if c, _, p := ds.demand("ep/blue", rep(t0, t0, 0, 2)); c != 0 || p != 2 {
		t.Errorf("first report: concurrency %v, pending %d; want no rate yet, and 2 pending", c, p)
	}
	if c, _, _ := ds.demand("ep/blue", rep(t0.Add(time.Second), t0, 3, 3)); c != 3 {
		t.Errorf("3 request-seconds in a second: concurrency %v, want 3", c)
	}
	if c, _, _ := ds.demand("ep/blue", rep(t0.Add(time.Second), t0, 3, 3)); c != 3 {
		t.Errorf("the same report again: concurrency %v, want its rate, 3", c)
	}
	t1 := t0.Add(2 * time.Second)
	if c, _, p := ds.demand("ep/blue", rep(t1, t1, 0.1, 1)); c != 0 || p != 1 {
		t.Errorf("restarted counters: concurrency %v, pending %d; want a new baseline (no rate) and 1 pending", c, p)
	}
	if c, _, p := ds.demand("ep/blue", nil); c != 0 || p != 0 || len(ds.seen) != 0 {
		t.Errorf("gateway gone: concurrency %v, pending %d, seen %v; want nothing", c, p, ds.seen)
	}
}

// metricValue reads a gauge or counter of deployment ep/blue from reg
// (direction: the label of that name, when not "").
func metricValue(t *testing.T, reg *prometheus.Registry, name, endpoint, deployment, direction string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["endpoint"] != endpoint || labels["deployment"] != deployment || (direction != "" && labels["direction"] != direction) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s for %s/%s in the registry", name, endpoint, deployment)
	return 0
}
