package reconcile_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// scaler is a Scaler whose decision the test sets.
type scaler struct {
	mu  sync.Mutex
	n   int
	set bool
}

func (s *scaler) Desired(endpoint, deployment string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.set
}

func (s *scaler) decide(n int) {
	s.mu.Lock()
	s.n, s.set = n, true
	s.mu.Unlock()
}

// An autoscaled deployment runs what the Scaler decides, within its
// bounds: out, in, to zero and back; a new version rolls out on at least
// one instance even at zero.
func TestAutoscaledCount(t *testing.T) {
	sc := &scaler{}
	e := start(t, func(c *reconcile.Config) { c.Scaler = sc })
	p := plan("ep", "blue", 1, nil)
	p.Autoscale = &resolve.Autoscale{MinInstances: 0, MaxInstances: 4}
	e.create(p)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitRoutes("blue", 1, time.Second) // no decision yet: the plan's count

	for _, tc := range []struct{ decide, want int }{{3, 3}, {9, 4}, {1, 1}, {0, 0}, {2, 2}} {
		sc.decide(tc.decide)
		e.rec.Enqueue("ep", "blue")
		e.waitRoutes("blue", tc.want, 5*time.Second)
		waitInstances(t, e, "blue", tc.want)
	}
	if ev := e.events("blue"); strings.Contains(ev, "Scaled: scaled from") {
		t.Errorf("the reconciler wrote its own Scaled events for an autoscaled deployment (the autoscaler explains its decisions):\n%s", ev)
	}
	if ev := e.events("blue"); !strings.Contains(ev, "Stopped instance blue-0: scaled to zero") && !strings.Contains(ev, "Stopped instance blue-1: scaled to zero") {
		t.Errorf("no instance was stopped 'scaled to zero':\n%s", ev)
	}

	// At zero, an update of what runs starts one instance of the new
	// version to prove it, then goes back to the decision.
	sc.decide(0)
	e.rec.Enqueue("ep", "blue")
	waitInstances(t, e, "blue", 0)
	p2 := plan("ep", "blue", 1, map[string]string{"V": "2"})
	p2.Autoscale = p.Autoscale
	e.update(p2)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	waitInstances(t, e, "blue", 0)
	if ev := e.events("blue"); !strings.Contains(ev, "Succeeded: deployment updated") {
		t.Errorf("the update at zero did not succeed through a started instance:\n%s", ev)
	}
}

// waitInstances waits until the deployment has n instance rows (stopped
// ones are removed).
func waitInstances(t *testing.T, e *env, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, _ := e.st.ListInstances(context.Background(), "ep", name)
		if len(rows) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: %d instance rows, want %d", name, len(rows), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A lean R deployment scaled to zero parks its last instance (out of
// routing, its loaded session kept with no worker) instead of stopping
// it; the next instance it needs is that one, unparked (no new start);
// after keep_loaded_for it stops for good.
func TestParkingLeanInstances(t *testing.T) {
	sc := &scaler{}
	e := start(t, func(c *reconcile.Config) { c.Scaler = sc })
	p := plan("ep", "blue", 1, nil)
	p.Runtime, p.RRuntime, p.Workers = driver.RuntimePlumber, spec.RRuntimeLean, 2
	p.Autoscale = &resolve.Autoscale{MinInstances: 0, MaxInstances: 2, KeepLoaded: 2 * time.Second}
	e.create(p)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	starts := func() int {
		n := 0
		for _, c := range e.drv.Calls() {
			if c.Op == "start" {
				n++
			}
		}
		return n
	}
	sc.decide(0)
	e.rec.Enqueue("ep", "blue")
	waitRow(t, e, "blue-0", store.InstanceParked)
	e.waitRoutes("blue", 0, 5*time.Second)
	if list, _ := e.drv.List(context.Background()); len(list) != 1 {
		t.Fatalf("parked: the driver runs %d instances, want the parked one", len(list))
	}
	sc.decide(1)
	e.rec.Enqueue("ep", "blue")
	e.waitRoutes("blue", 1, 5*time.Second)
	if n := starts(); n != 1 {
		t.Errorf("%d starts, want 1: the parked instance serves again without a new start", n)
	}
	ev := e.events("blue")
	for _, want := range []string{"Parked: Parked instance blue-0: scaled to zero", "Unparked: Unparked instance blue-0: 2 worker(s) forked"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
	sc.decide(0)
	e.rec.Enqueue("ep", "blue")
	waitRow(t, e, "blue-0", store.InstanceParked)
	waitInstances(t, e, "blue", 0) // keep_loaded_for (2 s) passed: stopped
	if ev := e.events("blue"); !strings.Contains(ev, "Stopped instance blue-0: parked for 2s (keep_loaded_for)") {
		t.Errorf("events lack the stop after keep_loaded_for:\n%s", ev)
	}
	if list, _ := e.drv.List(context.Background()); len(list) != 0 {
		t.Errorf("after keep_loaded_for the driver still runs %v", list)
	}
}

// waitRow waits until an instance's row has state.
func waitRow(t *testing.T, e *env, name, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, _ := e.st.ListInstances(context.Background(), "ep", "blue")
		for _, r := range rows {
			if r.Name == name && r.State == state {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s never reached state %s: %+v", name, state, rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
