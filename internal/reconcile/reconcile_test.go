package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/fake"
	"github.com/plumbline/plumbline/internal/reason"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

// dirs is an Artifacts that materializes every digest as an empty folder.
type dirs struct{ root string }

func (d dirs) Materialize(ctx context.Context, digest string) (string, error) {
	return d.root, nil
}

// checker is a configurable pre-start check.
type checker struct{ err error }

func (c checker) Check(ctx context.Context, p *resolve.Plan, codeDir string) ([]string, error) {
	return []string{"a warning"}, c.err
}

type env struct {
	t   *testing.T
	st  store.Store
	drv *fake.Driver
	rec *reconcile.Reconciler
}

func fastProbe() resolve.Probe {
	return resolve.Probe{Period: 30 * time.Millisecond, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
}

func plan(endpoint, name string, count int, env map[string]string) *resolve.Plan {
	return &resolve.Plan{
		Endpoint: endpoint, Deployment: name, Runtime: driver.RuntimeGeneric,
		Command:       []string{"server"},
		Env:           env,
		Liveness:      resolve.Route{Port: 8000, Path: "/live"},
		Readiness:     resolve.Route{Port: 8000, Path: "/ready"},
		Scoring:       resolve.Route{Port: 8000, Path: "/score"},
		InstanceCount: count, RequestTimeout: time.Second, MaxConcurrentPerInstance: 1,
		LivenessProbe: fastProbe(), ReadinessProbe: fastProbe(),
	}
}

func record(t *testing.T, p *resolve.Plan) []byte {
	t.Helper()
	b, err := json.Marshal(resolve.Record{Document: json.RawMessage(`{}`), Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func start(t *testing.T, mutate func(*reconcile.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	drv := fake.New(fake.Options{})
	cfg := reconcile.Config{
		Store: st, Driver: drv, Artifacts: dirs{t.TempDir()},
		Resync: 50 * time.Millisecond, StartupPoll: 10 * time.Millisecond, StopGrace: 200 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond, MinStartupDeadline: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	rec := reconcile.New(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rec.Start(ctx); err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		drv.Close()
		st.Close()
	})
	if _, err := st.CreateEndpoint(ctx, store.Endpoint{Name: "ep", AuthMode: "key", Spec: []byte(`{}`), State: store.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, drv: drv, rec: rec}
}

func (e *env) create(p *resolve.Plan) {
	e.t.Helper()
	_, err := e.st.CreateDeployment(context.Background(), store.Deployment{
		Endpoint: p.Endpoint, Name: p.Deployment, Spec: record(e.t, p), State: store.StateCreating,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.rec.Notify()
}

func (e *env) update(p *resolve.Plan) {
	e.t.Helper()
	_, err := e.st.UpdateDeployment(context.Background(), p.Endpoint, p.Deployment, func(d *store.Deployment) error {
		d.Spec, d.State = record(e.t, p), store.StateUpdating
		d.Generation++
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.rec.Notify()
}

// waitState waits until the deployment reaches state and returns it.
func (e *env) waitState(name, state string, within time.Duration) store.Deployment {
	e.t.Helper()
	deadline := time.Now().Add(within)
	var d store.Deployment
	var err error
	for time.Now().Before(deadline) {
		d, err = e.st.GetDeployment(context.Background(), "ep", name)
		if err == nil && d.State == state {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("deployment %s: got state %q (reason %q, err %v), want %s", name, d.State, d.Reason, err, state)
	return d
}

// routes lists the deployment's routable instances as the store has them:
// what every gateway builds its table from.
func (e *env) routes(name string) []store.Instance {
	rows, err := e.st.ListInstances(context.Background(), "ep", name)
	if err != nil {
		e.t.Error(err)
	}
	var out []store.Instance
	for _, r := range rows {
		if r.Routable {
			out = append(out, r)
		}
	}
	return out
}

// waitRoutes waits until the deployment has n routable instances.
func (e *env) waitRoutes(name string, n int, within time.Duration) []store.Instance {
	e.t.Helper()
	deadline := time.Now().Add(within)
	var got []store.Instance
	for time.Now().Before(deadline) {
		got = e.routes(name)
		if len(got) == n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("deployment %s: got %d routable instances %v, want %d", name, len(got), got, n)
	return nil
}

func (e *env) events(name string) string {
	evs, err := e.st.ListEvents(context.Background(), store.EventFilter{Endpoint: "ep", Deployment: name})
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Reason + ": " + ev.Message + "\n")
	}
	return b.String()
}

func TestCreateReachesSucceeded(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 2, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	got := e.waitRoutes("blue", 2, time.Second)
	if got[0].Addr == got[1].Addr {
		t.Errorf("two instances share address %s", got[0].Addr)
	}
	ins, _ := e.st.ListInstances(context.Background(), "ep", "blue")
	if len(ins) != 2 {
		t.Errorf("got %d instance records, want 2", len(ins))
	}
	if ev := e.events("blue"); !strings.Contains(ev, "Succeeded") || !strings.Contains(ev, "Ready") {
		t.Errorf("events lack Ready/Succeeded:\n%s", ev)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		behavior   fake.Behavior
		checkErr   error
		wantReason string
		wantStarts bool
	}{
		{
			name:       "terminal start error",
			behavior:   fake.Behavior{StartErr: &driver.StartError{ID: "x", Reason: "no such executable"}},
			wantReason: "ResourceNotReady: start instance x: no such executable",
			wantStarts: true, // attempted once, then terminal: no retry
		},
		{
			name:       "crash before ready",
			behavior:   fake.Behavior{NotReady: true, CrashAfter: 20 * time.Millisecond, ExitCode: 3},
			wantReason: "ResourceNotReady: instance blue-0 exited with code 3",
			wantStarts: true,
		},
		{
			name:       "never ready",
			behavior:   fake.Behavior{NotReady: true},
			wantReason: "ResourceNotReady: instance blue-0 did not become ready within 2s (readiness probe /ready HTTP probe failed with statuscode: 503)",
			wantStarts: true,
		},
		{
			name:       "pre-start check",
			checkErr:   reason.Terminal(reason.ResourceNotReady, "R packages used by plumber.R are not installed: tibble"),
			wantReason: "ResourceNotReady: R packages used by plumber.R are not installed: tibble",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, func(c *reconcile.Config) { c.Checker = checker{tt.checkErr} })
			e.drv.SetBehavior("", tt.behavior)
			e.create(plan("ep", "blue", 1, nil))
			d := e.waitState("blue", store.StateFailed, 5*time.Second)
			if !strings.HasPrefix(d.Reason, tt.wantReason) {
				t.Errorf("got reason %q, want prefix %q", d.Reason, tt.wantReason)
			}
			// Nothing is left running.
			deadline := time.Now().Add(2 * time.Second)
			for {
				list, _ := e.drv.List(context.Background())
				if len(list) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("instances left after failure: %v", list)
				}
				time.Sleep(10 * time.Millisecond)
			}
			starts := 0
			for _, c := range e.drv.Calls() {
				if c.Op == "start" {
					starts++
				}
			}
			if (starts > 0) != tt.wantStarts {
				t.Errorf("start attempts: %d, want some: %v", starts, tt.wantStarts)
			}
			if tt.behavior.StartErr != nil && starts != 1 {
				t.Errorf("a terminal start error was retried: %d attempts", starts)
			}
		})
	}
}

func TestCrashAfterReadyIsReplaced(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 2, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitRoutes("blue", 2, time.Second)
	if err := e.drv.Crash("ep.blue.blue-1", 137); err != nil {
		t.Fatal(err)
	}
	e.waitRoutes("blue", 1, time.Second)
	e.waitRoutes("blue", 2, 5*time.Second)
	d, _ := e.st.GetDeployment(context.Background(), "ep", "blue")
	if d.State != store.StateSucceeded {
		t.Errorf("got state %s after a replaced crash, want Succeeded", d.State)
	}
	ev := e.events("blue")
	for _, want := range []string{"Exited: instance blue-1 exited with code 137", "Restarted: Started instance blue-1"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 1, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	if err := e.drv.SetLive("ep.blue.blue-0", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.events("blue"), "Restarted") {
		if time.Now().After(deadline) {
			t.Fatalf("no restart after liveness failure:\n%s", e.events("blue"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ev := e.events("blue"); !strings.Contains(ev, "failed liveness probe 3 times, will be restarted") {
		t.Errorf("events lack the Killing message:\n%s", ev)
	}
	e.waitRoutes("blue", 1, 5*time.Second)
}

func TestScale(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 1, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	for _, n := range []int{3, 1} {
		e.update(plan("ep", "blue", n, nil))
		e.waitState("blue", store.StateSucceeded, 5*time.Second)
		e.waitRoutes("blue", n, 3*time.Second)
	}
	// A scale change alone never restarts the surviving instance.
	starts := 0
	for _, c := range e.drv.Calls() {
		if c.Op == "start" && c.ID == "ep.blue.blue-0" {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("blue-0 started %d times, want 1", starts)
	}
}

func TestRollingReplacementKeepsServing(t *testing.T) {
	e := start(t, nil)
	e.drv.SetBehavior("", fake.Behavior{StartDelay: 30 * time.Millisecond})
	e.create(plan("ep", "blue", 2, map[string]string{"V": "1"}))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitRoutes("blue", 2, time.Second)

	var stop atomic.Bool
	var minRoutes, maxRunning atomic.Int64
	minRoutes.Store(99)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			n := int64(len(e.routes("blue")))
			if n < minRoutes.Load() {
				minRoutes.Store(n)
			}
			if l, err := e.drv.List(context.Background()); err == nil && int64(len(l)) > maxRunning.Load() {
				maxRunning.Store(int64(len(l)))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	e.update(plan("ep", "blue", 2, map[string]string{"V": "2"}))
	e.waitState("blue", store.StateSucceeded, 10*time.Second)
	stop.Store(true)
	wg.Wait()
	if m := minRoutes.Load(); m < 1 {
		t.Errorf("during the rolling replacement the deployment had %d routable instances; want always >= 1", m)
	}
	got := e.waitRoutes("blue", 2, 3*time.Second)
	list, _ := e.drv.List(context.Background())
	if len(list) != 2 {
		t.Errorf("got %d instances running after the update, want 2 (old ones stopped)", len(list))
	}
	// Replacement is one at a time: never more than one extra instance,
	// and exactly two new ones started.
	if m := maxRunning.Load(); m > 3 {
		t.Errorf("up to %d instances ran during the update, want at most 3 (2 + one surge)", m)
	}
	starts := 0
	for _, c := range e.drv.Calls()[2:] {
		if c.Op == "start" {
			starts++
		}
	}
	if starts != 2 {
		t.Errorf("%d instances started during the update, want 2", starts)
	}
	for _, r := range got {
		for _, l := range list {
			if l.Addr == r.Addr && l.State != driver.StateRunning {
				t.Errorf("routed instance %s is %s", r.Name, l.State)
			}
		}
	}
}

func TestDeleteStopsInstancesAndRemovesRecord(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 2, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	if _, err := e.st.UpdateDeployment(context.Background(), "ep", "blue", func(d *store.Deployment) error {
		d.State = store.StateDeleting
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.rec.Notify()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.st.GetDeployment(context.Background(), "ep", "blue")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment not deleted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if list, _ := e.drv.List(context.Background()); len(list) != 0 {
		t.Errorf("instances left after delete: %v", list)
	}
}

func TestEndpointDeletionRemovesEverything(t *testing.T) {
	e := start(t, nil)
	e.create(plan("ep", "blue", 1, nil))
	e.create(plan("ep", "green", 1, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitState("green", store.StateSucceeded, 5*time.Second)
	if _, err := e.st.UpdateEndpoint(context.Background(), "ep", func(x *store.Endpoint) error {
		x.State = store.StateDeleting
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.rec.Notify()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.st.GetEndpoint(context.Background(), "ep")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint not deleted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if list, _ := e.drv.List(context.Background()); len(list) != 0 {
		t.Errorf("instances left after endpoint delete: %v", list)
	}
}

// TestFailedUpdateKeepsPreviousVersionServing: a new version that cannot
// start makes the deployment Failed, and the last version that succeeded
// keeps serving — restarted if it crashes.
func TestFailedUpdateKeepsPreviousVersionServing(t *testing.T) {
	e := start(t, nil)
	v1 := plan("ep", "blue", 1, map[string]string{"V": "1"})
	e.create(v1)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitRoutes("blue", 1, time.Second)

	// The API keeps the last good record in Previous; do the same here.
	v2 := plan("ep", "blue", 1, map[string]string{"V": "2"})
	e.drv.SetBehavior("ep.blue.blue-1", fake.Behavior{NotReady: true, CrashAfter: 20 * time.Millisecond, ExitCode: 1})
	e.updateKeeping(v1, v2)
	e.waitState("blue", store.StateFailed, 5*time.Second)
	got := e.waitRoutes("blue", 1, time.Second)
	if got[0].Name != "blue-0" {
		t.Fatalf("after the failed update the routable instance is %s, want the old blue-0", got[0].Name)
	}
	// The old version's instance crashes: it comes back.
	if err := e.drv.Crash("ep.blue.blue-0", 137); err != nil {
		t.Fatal(err)
	}
	e.waitRoutes("blue", 0, 2*time.Second)
	e.waitRoutes("blue", 1, 5*time.Second)
	d, _ := e.st.GetDeployment(context.Background(), "ep", "blue")
	if d.State != store.StateFailed {
		t.Errorf("state %s, want Failed (the update still failed)", d.State)
	}
}

// TestLeanPlanStartsRWorkers: a plan on the lean R runtime reaches the
// driver with its settings; other plans carry none.
func TestLeanPlanStartsRWorkers(t *testing.T) {
	e := start(t, nil)
	lean := plan("ep", "blue", 1, nil)
	lean.Runtime, lean.RRuntime, lean.Workers, lean.MaxRequestsPerWorker = driver.RuntimePlumber, "lean", 3, 100
	e.create(lean)
	e.create(plan("ep", "green", 1, nil))
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitState("green", store.StateSucceeded, 5*time.Second)
	for _, c := range e.drv.Calls() {
		if c.Op != "start" {
			continue
		}
		rw := c.Spec.RWorkers
		switch c.Spec.Deployment {
		case "blue":
			want := driver.RWorkers{Workers: 3, MaxRequests: 100, RequestTimeout: time.Second, LivenessPath: "/live", ReadinessPath: "/ready"}
			if rw == nil || *rw != want {
				t.Errorf("blue started with RWorkers %+v, want %+v", rw, want)
			}
		case "green":
			if rw != nil {
				t.Errorf("green (generic) started with RWorkers %+v", rw)
			}
		}
	}
}
