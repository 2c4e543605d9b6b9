package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver/fake"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

// run starts a reconciler on st and drv and returns a function that stops
// it (leaving instances running, as a server restart does).
func run(t *testing.T, st store.Store, drv *fake.Driver, mutate func(*reconcile.Config)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
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
		rec.Start(ctx)
	}()
	var stopped atomic.Bool
	stop = func() {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateEndpoint(context.Background(), store.Endpoint{Name: "ep", AuthMode: "key", Spec: []byte(`{}`), State: store.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	return st
}

func starts(drv *fake.Driver) int {
	n := 0
	for _, c := range drv.Calls() {
		if c.Op == "start" {
			n++
		}
	}
	return n
}

// TestRestartReadoptsInstances: a reconciler that stops (the server
// restarts) leaves its instances running; the next one re-adopts those that
// still run the wanted template, keeps them routable, starts nothing new,
// and replaces only an instance whose plan changed meanwhile.
func TestRestartReadoptsInstances(t *testing.T) {
	st := openStore(t)
	drv := fake.New(fake.Options{})
	t.Cleanup(drv.Close)
	e := &env{t: t, st: st, drv: drv}
	stop := run(t, st, drv, nil)
	for _, name := range []string{"blue", "green"} {
		if _, err := st.CreateDeployment(context.Background(), store.Deployment{
			Endpoint: "ep", Name: name, Spec: record(t, plan("ep", name, 1, map[string]string{"V": "1"})), State: store.StateCreating,
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitState("green", store.StateSucceeded, 5*time.Second)
	before := e.waitRoutes("blue", 1, time.Second)[0]
	stop()
	if n := len(e.routes("blue")); n != 1 {
		t.Fatalf("after the reconciler stopped, blue has %d routable rows, want its instance still listed", n)
	}

	// While plumbline is down, green's plan changes; blue's does not.
	// As the API does, the record keeps the version that succeeded.
	b, err := json.Marshal(resolve.Record{Document: json.RawMessage(`{}`), Plan: plan("ep", "green", 1, map[string]string{"V": "2"}),
		Previous: &resolve.Record{Document: json.RawMessage(`{}`), Plan: plan("ep", "green", 1, map[string]string{"V": "1"})}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateDeployment(context.Background(), "ep", "green", func(d *store.Deployment) error {
		d.Spec, d.State = b, store.StateUpdating
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	drv.Restart()
	startsBefore := starts(drv)
	run(t, st, drv, nil)

	e.waitState("green", store.StateSucceeded, 5*time.Second)
	after := e.waitRoutes("blue", 1, time.Second)[0]
	if after.Addr != before.Addr || after.ID != before.ID {
		t.Errorf("blue after the restart = %+v, want the same instance at %s", after, before.Addr)
	}
	var started []string
	for _, c := range drv.Calls() {
		if c.Op == "start" {
			started = append(started, c.ID)
		}
	}
	if got := started[startsBefore:]; len(got) != 1 || got[0] != "ep.green.green-1" {
		t.Errorf("after the restart these instances started: %v; want only green's replacement (green-1)", got)
	}
	if ev := e.events("blue"); !strings.Contains(ev, "Adopted: Re-adopted instance blue-0") {
		t.Errorf("blue's events lack the re-adoption:\n%s", ev)
	}
	// green's old instance, adopted for the old plan, is drained and stopped.
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, _ := drv.List(context.Background())
		if len(list) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances running: %+v; want blue-0 and green-1", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowDeploymentDoesNotBlockOthers: a deployment whose driver start
// takes seconds does not delay another deployment.
func TestSlowDeploymentDoesNotBlockOthers(t *testing.T) {
	st := openStore(t)
	drv := fake.New(fake.Options{})
	t.Cleanup(drv.Close)
	drv.SetBehavior("ep.slow", fake.Behavior{StartDelay: 3 * time.Second})
	e := &env{t: t, st: st, drv: drv}
	run(t, st, drv, func(c *reconcile.Config) { c.MinStartupDeadline = time.Minute })
	for _, name := range []string{"slow", "fast"} {
		if _, err := st.CreateDeployment(context.Background(), store.Deployment{
			Endpoint: "ep", Name: name, Spec: record(t, plan("ep", name, 1, nil)), State: store.StateCreating,
		}); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	e.waitState("fast", store.StateSucceeded, 2*time.Second)
	if d, _ := st.GetDeployment(context.Background(), "ep", "slow"); d.State != store.StateCreating {
		t.Errorf("slow is %s after %s, want still Creating (its start takes 3s)", d.State, time.Since(begin))
	}
	e.waitState("slow", store.StateSucceeded, 10*time.Second)
}

// flaky fails to materialise the first n times, like a transient I/O error.
type flaky struct {
	left atomic.Int32
	root string
}

func (f *flaky) Materialize(ctx context.Context, digest string) (string, error) {
	if f.left.Add(-1) >= 0 {
		return "", errors.New("read blob: input/output error")
	}
	return f.root, nil
}

// TestTransientFailureIsRetried: materialising fails twice; the deployment
// is not failed, the error is an event, and it succeeds on a retry.
func TestTransientFailureIsRetried(t *testing.T) {
	st := openStore(t)
	drv := fake.New(fake.Options{})
	t.Cleanup(drv.Close)
	f := &flaky{root: t.TempDir()}
	f.left.Store(2)
	e := &env{t: t, st: st, drv: drv}
	run(t, st, drv, func(c *reconcile.Config) { c.Artifacts = f })
	p := plan("ep", "blue", 1, nil)
	p.ModelDigest = "sha256:00"
	if _, err := st.CreateDeployment(context.Background(), store.Deployment{
		Endpoint: "ep", Name: "blue", Spec: record(t, p), State: store.StateCreating,
	}); err != nil {
		t.Fatal(err)
	}
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	// Each failure is two events: the instance's storage-initializer line
	// (DownloadFailed, what get-logs --container storage-initializer shows)
	// and the deployment's retry notice.
	ev := "\n" + e.events("blue")
	if n := strings.Count(ev, "\nArtifactUnavailable: model"); n != 2 || !strings.Contains(ev, "(will retry)") {
		t.Errorf("events should show two retried ArtifactUnavailable warnings, got %d:\n%s", n, ev)
	}
	if n := strings.Count(ev, "DownloadFailed: ArtifactUnavailable: model"); n != 2 {
		t.Errorf("events should show two DownloadFailed storage-initializer lines, got %d:\n%s", n, ev)
	}
}

// TestFencedReconcilerStartsNothing: a reconciler whose fence says it lost
// the lease never starts an instance.
func TestFencedReconcilerStartsNothing(t *testing.T) {
	st := openStore(t)
	drv := fake.New(fake.Options{})
	t.Cleanup(drv.Close)
	var asked atomic.Int32
	run(t, st, drv, func(c *reconcile.Config) {
		c.Fence = func(ctx context.Context) error { asked.Add(1); return store.ErrFenced }
	})
	if _, err := st.CreateDeployment(context.Background(), store.Deployment{
		Endpoint: "ep", Name: "blue", Spec: record(t, plan("ep", "blue", 1, nil)), State: store.StateCreating,
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for asked.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if asked.Load() < 2 {
		t.Fatalf("the fence was asked %d times, want it asked before every start", asked.Load())
	}
	if n := starts(drv); n != 0 {
		t.Errorf("a fenced reconciler started %d instances, want 0", n)
	}
}

// TestRollingUpdateKeepsEachInstancesRoute: during a rolling update that
// changes scoring_route, each instance's stored row keeps the path and
// limit of the plan it runs, so no gateway sends a request to a path an
// instance does not serve.
func TestRollingUpdateKeepsEachInstancesRoute(t *testing.T) {
	st := openStore(t)
	drv := fake.New(fake.Options{})
	t.Cleanup(drv.Close)
	e := &env{t: t, st: st, drv: drv}
	run(t, st, drv, nil)
	v1 := plan("ep", "blue", 1, nil)
	if _, err := st.CreateDeployment(context.Background(), store.Deployment{
		Endpoint: "ep", Name: "blue", Spec: record(t, v1), State: store.StateCreating,
	}); err != nil {
		t.Fatal(err)
	}
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	// v2 serves /predict; its new instance is slow to become ready.
	drv.SetBehavior("ep.blue.blue-1", fake.Behavior{NotReady: true, ScoringPath: "/predict"})
	v2 := plan("ep", "blue", 1, nil)
	v2.Scoring.Path, v2.MaxConcurrentPerInstance = "/predict", 4
	if _, err := st.UpdateDeployment(context.Background(), "ep", "blue", func(d *store.Deployment) error {
		d.Spec, d.State = record(t, v2), store.StateUpdating
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var rows []store.Instance
	for len(rows) < 2 && time.Now().Before(deadline) {
		rows, _ = st.ListInstances(context.Background(), "ep", "blue")
		time.Sleep(10 * time.Millisecond)
	}
	if len(rows) != 2 {
		t.Fatalf("rows during the update: %+v, want the old and the new instance", rows)
	}
	want := map[string][2]any{"blue-0": {"/score", 1}, "blue-1": {"/predict", 4}}
	for _, r := range rows {
		if w := want[r.Name]; r.ScoringPath != w[0] || r.MaxConcurrent != w[1] {
			t.Errorf("row %s: scoring path %q, max concurrent %d; want %v (its own plan's)", r.Name, r.ScoringPath, r.MaxConcurrent, w)
		}
	}
	if r := e.routes("blue"); len(r) != 1 || r[0].Name != "blue-0" {
		t.Errorf("routable during the update: %+v, want only the old blue-0", r)
	}
	if err := drv.SetReady("ep.blue.blue-1", true); err != nil {
		t.Fatal(err)
	}
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	if r := e.waitRoutes("blue", 1, 3*time.Second); r[0].Name != "blue-1" || r[0].ScoringPath != "/predict" {
		t.Errorf("after the update: %+v, want blue-1 on /predict", r)
	}
}
