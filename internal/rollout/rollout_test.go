package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/figures"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

var bg = context.Background()

func TestSplit(t *testing.T) {
	tests := []struct {
		base map[string]int
		pct  int
		want map[string]int
	}{
		{map[string]int{"blue": 100}, 10, map[string]int{"blue": 90, "green": 10}},
		{map[string]int{"blue": 100}, 100, map[string]int{"green": 100}},
		{map[string]int{"a": 50, "b": 50}, 25, map[string]int{"a": 38, "b": 37, "green": 25}},
		{map[string]int{"a": 1, "b": 1, "c": 1}, 10, map[string]int{"a": 30, "b": 30, "c": 30, "green": 10}},
		{map[string]int{"a": 70, "b": 20}, 50, map[string]int{"a": 39, "b": 11, "green": 50}},
	}
	for _, tt := range tests {
		got := Split(tt.base, "green", tt.pct)
		if diff := cmp.Diff(tt.want, got); diff != "" || sum(got) != 100 {
			t.Errorf("Split(%v, %d) (-want +got, sum %d):\n%s", tt.base, tt.pct, sum(got), diff)
		}
	}
}

func TestNewPlan(t *testing.T) {
	five, twenty := 5, 20
	p, err := NewPlan(nil, api.RolloutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "10 % → 25 % → 50 % → 100 %, 60 s and 100 requests a step" {
		t.Errorf("default plan: %s", got)
	}
	bake := 30
	p, err = NewPlan(&spec.RolloutSettings{Steps: []int{30, 100}, BakeTime: &bake, MinRequests: &twenty}, api.RolloutRequest{ShadowPercent: &five})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "shadow 5 % → 30 % → 100 %, 30 s and 20 requests a step" {
		t.Errorf("plan: %s", got)
	}
	if _, err := NewPlan(nil, api.RolloutRequest{Steps: []int{50, 20}}); err == nil || !strings.Contains(err.Error(), "steps.1: steps must increase") {
		t.Errorf("decreasing steps: %v", err)
	}
}

// fixture is a real SQLite store with endpoint ep serving blue, and green
// ready to roll out.
type fixture struct {
	st   store.Store
	ops  *Ops
	ctl  *Controller
	now  time.Time
	gen  int64
	rows map[string]store.Stats
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "plumbline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{st: db, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), rows: map[string]store.Stats{}}
	clock := func() time.Time { return f.now }
	f.ops = &Ops{Store: db, Now: clock}
	f.ctl = &Controller{Store: db, Now: clock}
	if _, err := db.CreateEndpoint(bg, store.Endpoint{Name: "ep", State: store.StateSucceeded, Traffic: map[string]int{"blue": 100}}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"blue", "green"} {
		rec := resolve.Record{Document: json.RawMessage(`{"name":"` + name + `"}`),
			Plan: &resolve.Plan{ModelName: "iris", ModelVersion: string(rune('1' + i)), ModelDigest: "sha256:" + strings.Repeat(string(rune('a'+i)), 64)}}
		b, _ := json.Marshal(rec)
		if _, err := db.CreateDeployment(bg, store.Deployment{Endpoint: "ep", Name: name, Spec: b, State: store.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// serve writes gateway figures for the current epoch: n requests of
// deployment, errs of them failing, each taking lat seconds.
func (f *fixture) serve(t *testing.T, source, deployment string, epoch int64, n, errs int, lat float64) {
	t.Helper()
	key := source + "/" + deployment
	var d figures.Deployment
	if r, ok := f.rows[key]; ok && r.Epoch == epoch {
		_ = json.Unmarshal(r.Figures, &d)
	}
	for i := range n {
		code := 200
		if i < errs {
			code = 500
		}
		d.Observe(code, lat)
	}
	b, _ := json.Marshal(d)
	row := store.Stats{Source: source, Endpoint: "ep", Epoch: epoch, Kind: kindDeployment, Subject: deployment, Figures: b}
	f.rows[key] = row
	if err := f.st.PutStats(bg, []store.Stats{row}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) rollout(t *testing.T) store.Rollout {
	t.Helper()
	rs, err := f.st.ListRollouts(bg, store.RolloutFilter{Endpoint: "ep", Limit: 1})
	if err != nil || len(rs) != 1 {
		t.Fatalf("rollouts: %v %v", rs, err)
	}
	return rs[0]
}

func (f *fixture) traffic(t *testing.T) map[string]int {
	t.Helper()
	e, err := f.st.GetEndpoint(bg, "ep")
	if err != nil {
		t.Fatal(err)
	}
	return e.Traffic
}

func (f *fixture) step(t *testing.T) store.Rollout {
	t.Helper()
	if err := f.ctl.Step(bg, f.rollout(t)); err != nil {
		t.Fatal(err)
	}
	return f.rollout(t)
}

func TestRolloutSucceeds(t *testing.T) {
	f := newFixture(t)
	ten, zero := 10, 0
	r, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{Steps: []int{10, 50, 100}, MinRequests: &ten, BakeTime: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"blue": 90, "green": 10}, f.traffic(t)); diff != "" {
		t.Fatalf("first step traffic (-want +got):\n%s", diff)
	}
	// Too few requests: the step waits (and never reverts).
	f.serve(t, "gw-1", "green", r.Epoch, 6, 0, 0.01)
	f.serve(t, "gw-1", "blue", r.Epoch, 50, 0, 0.01)
	if got := f.step(t); got.Step != 0 || got.State != store.RolloutRunning {
		t.Fatalf("with 6 of 10 requests: step %d, %s; want to wait at step 0", got.Step, got.State)
	}
	v, _ := f.ops.View(bg, f.rollout(t), false)
	if v.Figures == nil || v.Figures.Waiting != "4 more requests (6 of 10)" {
		t.Errorf("figures while waiting: %+v", v.Figures)
	}
	// Two gateways add up to the sample.
	f.serve(t, "gw-2", "green", r.Epoch, 4, 0, 0.01)
	r = f.step(t)
	if r.Step != 1 || f.traffic(t)["green"] != 50 {
		t.Fatalf("after 10 good requests: step %d, traffic %v; want step 1 at 50 %%", r.Step, f.traffic(t))
	}
	f.serve(t, "gw-1", "green", r.Epoch, 10, 0, 0.01)
	f.serve(t, "gw-1", "blue", r.Epoch, 10, 0, 0.01)
	r = f.step(t)
	f.serve(t, "gw-1", "green", r.Epoch, 10, 0, 0.01)
	r = f.step(t)
	if r.State != store.RolloutSucceeded || !strings.Contains(r.Reason, "step 3 of 3 (100 %) passed") {
		t.Fatalf("final state %s (%s)", r.State, r.Reason)
	}
	if diff := cmp.Diff(map[string]int{"green": 100}, f.traffic(t)); diff != "" {
		t.Errorf("final traffic (-want +got):\n%s", diff)
	}
	v, err = f.ops.View(bg, r, true)
	if err != nil {
		t.Fatal(err)
	}
	var causes []string
	for _, h := range v.History {
		causes = append(causes, h.Cause)
	}
	want := []string{"rollout of green started: step 1 of 3 (10 %)", "rollout 1 of green: step 2 of 3 (50 %)", "rollout 1 of green: step 3 of 3 (100 %)", "rollout 1 of green succeeded"}
	if diff := cmp.Diff(want, causes); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	first := v.History[0].Entries
	if len(first) != 2 || first[1].Deployment != "green" || first[1].Traffic != 10 || first[1].Model != "iris:2" || !strings.HasPrefix(first[1].ModelDigest, "sha256:bbbb") {
		t.Errorf("first history entry: %+v", first)
	}
}

func TestRolloutRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serve      func(f *fixture, t *testing.T, epoch int64)
		wantReason string
	}{
		{"error rate", func(f *fixture, t *testing.T, epoch int64) {
			f.serve(t, "gw-1", "green", epoch, 20, 7, 0.01)
		}, "step 2 of 3 (30 %): error rate 35 % (7 of 20 requests) > max 1 %"},
		{"a gateway's own sample", func(f *fixture, t *testing.T, epoch int64) {
			var d figures.Deployment
			for range 5 {
				d.Observe(500, 0.01)
			}
			d.Tripped = "error rate 100 % (5 of 5 requests) > max 1 %"
			b, _ := json.Marshal(d)
			if err := f.st.PutStats(bg, []store.Stats{{Source: "gw-9", Endpoint: "ep", Epoch: epoch, Kind: kindDeployment, Subject: "green", Figures: b}}); err != nil {
				t.Fatal(err)
			}
		}, "step 2 of 3 (30 %): gateway gw-9: error rate 100 % (5 of 5 requests) > max 1 %"},
		{"latency", func(f *fixture, t *testing.T, epoch int64) {
			f.serve(t, "gw-1", "green", epoch, 20, 0, 0.100)
			f.serve(t, "gw-1", "blue", epoch, 40, 0, 0.010)
		}, "step 2 of 3 (30 %): p99 latency 100 ms is 10.00× the live deployments' 10.0 ms > max 1.50×"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			twenty, zero := 20, 0
			r, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{Steps: []int{10, 30, 100}, MinRequests: &twenty, BakeTime: &zero})
			if err != nil {
				t.Fatal(err)
			}
			f.serve(t, "gw-1", "green", r.Epoch, 20, 0, 0.01)
			f.serve(t, "gw-1", "blue", r.Epoch, 40, 0, 0.01)
			r = f.step(t)
			if r.Step != 1 {
				t.Fatalf("step %d, want 1", r.Step)
			}
			tc.serve(f, t, r.Epoch)
			r = f.step(t)
			if r.State != store.RolloutRolledBack || r.Reason != tc.wantReason {
				t.Errorf("got %s: %q\nwant RolledBack: %q", r.State, r.Reason, tc.wantReason)
			}
			if diff := cmp.Diff(map[string]int{"blue": 100}, f.traffic(t)); diff != "" {
				t.Errorf("traffic after the rollback (-want +got):\n%s", diff)
			}
			evs, _ := f.st.ListEvents(bg, store.EventFilter{Endpoint: "ep", Deployment: "green"})
			if len(evs) == 0 || evs[len(evs)-1].Reason != "RolloutRolledBack" || !strings.Contains(evs[len(evs)-1].Message, tc.wantReason) {
				t.Errorf("last event: %+v", evs[len(evs)-1])
			}
		})
	}
}

// TestShadowStep: a shadow step mirrors to the candidate and judges the
// comparison; an agreement below the gate rolls back.
func TestShadowStep(t *testing.T) {
	f := newFixture(t)
	ten, twenty, zero := 10, 20, 0
	r, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{ShadowPercent: &twenty, MinRequests: &ten, BakeTime: &zero})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := f.st.GetEndpoint(bg, "ep")
	if diff := cmp.Diff(map[string]int{"green": 20}, e.Mirror); diff != "" || e.Traffic["green"] != 0 {
		t.Fatalf("shadow step: traffic %v, mirror (-want +got):\n%s", e.Traffic, diff)
	}
	var p figures.Pair
	for i := range 10 {
		p.ShadowRequests++
		p.Predictions++
		if i%10 != 9 {
			p.Agreed++
		}
		p.LiveLatency.Add(0.01)
		p.ShadowLatency.Add(0.01)
	}
	b, _ := json.Marshal(p)
	if err := f.st.PutStats(bg, []store.Stats{{Source: "gw-1", Endpoint: "ep", Epoch: r.Epoch, Kind: kindMirror, Subject: "blue>green", Figures: b}}); err != nil {
		t.Fatal(err)
	}
	r = f.step(t)
	if r.State != store.RolloutRolledBack || r.Reason != "step 1 of 5 (shadow 20 %): agreement 90 % (9 of 10 predictions) < min 95 %" {
		t.Errorf("got %s: %q", r.State, r.Reason)
	}
	e, _ = f.st.GetEndpoint(bg, "ep")
	if len(e.Mirror) != 0 || e.Traffic["blue"] != 100 {
		t.Errorf("after the rollback: traffic %v, mirror %v", e.Traffic, e.Mirror)
	}
	cmpView, err := f.ops.Compare(bg, "ep", 5, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmpView.Pairs) != 1 || cmpView.Pairs[0].Agreement != 0.9 || cmpView.Epoch != r.Epoch-1 {
		t.Errorf("comparison after the shadow step: %+v (epoch %d, rollout %d)", cmpView.Pairs, cmpView.Epoch, r.Epoch)
	}
}

// TestShadowStepFromASplit: a candidate that already had live traffic
// gets none during its shadow step (live or mirrored, not both), and the
// rollback restores its share.
func TestShadowStepFromASplit(t *testing.T) {
	f := newFixture(t)
	if _, err := f.st.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error { e.Traffic = map[string]int{"blue": 90, "green": 10}; return nil }); err != nil {
		t.Fatal(err)
	}
	ten := 10
	if _, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{ShadowPercent: &ten}); err != nil {
		t.Fatal(err)
	}
	e, _ := f.st.GetEndpoint(bg, "ep")
	if diff := cmp.Diff(map[string]int{"blue": 100}, e.Traffic); diff != "" || e.Mirror["green"] != 10 {
		t.Errorf("shadow step: mirror %v, traffic (-want +got):\n%s", e.Mirror, diff)
	}
	if _, err := f.ops.Abort(bg, "ep", "green"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"blue": 90, "green": 10}, f.traffic(t)); diff != "" {
		t.Errorf("after abort (-want +got):\n%s", diff)
	}
}

func TestPauseResumeAbort(t *testing.T) {
	f := newFixture(t)
	one, zero := 1, 0
	if _, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{MinRequests: &one, BakeTime: &zero}); err != nil {
		t.Fatal(err)
	}
	var p *Problem
	if _, err := f.ops.Start(bg, "ep", "blue", api.RolloutRequest{}); !errors.As(err, &p) || !p.Conflict || !strings.Contains(p.Msg, "already has a rollout of green") {
		t.Errorf("a second rollout: %v", err)
	}
	if _, err := f.ops.Resume(bg, "ep", "green"); !errors.As(err, &p) || !p.Conflict {
		t.Errorf("resume a running rollout: %v", err)
	}
	r, err := f.ops.Pause(bg, "ep", "green")
	if err != nil || r.State != store.RolloutPaused {
		t.Fatalf("pause: %v %v", r.State, err)
	}
	f.serve(t, "gw-1", "green", r.Epoch, 5, 0, 0.01)
	f.ctl.pass(bg) // a paused rollout is not judged
	if got := f.rollout(t); got.Step != 0 || got.State != store.RolloutPaused {
		t.Errorf("paused rollout moved: step %d, %s", got.Step, got.State)
	}
	f.now = f.now.Add(time.Minute)
	r, err = f.ops.Resume(bg, "ep", "green")
	if err != nil || r.State != store.RolloutRunning || !r.StepStartedAt.Equal(f.now) {
		t.Fatalf("resume: %+v %v", r, err)
	}
	r = f.step(t)
	if r.Step != 1 {
		t.Fatalf("after resume: step %d", r.Step)
	}
	r, err = f.ops.Abort(bg, "ep", "green")
	if err != nil || r.State != store.RolloutAborted || !strings.Contains(r.Reason, "aborted by a user at step 2 of 4 (25 %)") {
		t.Fatalf("abort: %+v %v", r, err)
	}
	if diff := cmp.Diff(map[string]int{"blue": 100}, f.traffic(t)); diff != "" {
		t.Errorf("traffic after abort (-want +got):\n%s", diff)
	}
	if _, err := f.ops.Abort(bg, "ep", "green"); !errors.As(err, &p) || !p.NotFound {
		t.Errorf("abort without an active rollout: %v", err)
	}
}

func TestStartRefuses(t *testing.T) {
	f := newFixture(t)
	var p *Problem
	if _, err := f.ops.Start(bg, "ep", "nope", api.RolloutRequest{}); !errors.As(err, &p) || !p.NotFound {
		t.Errorf("unknown deployment: %v", err)
	}
	if _, err := f.st.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error { e.Traffic = map[string]int{"green": 100}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ops.Start(bg, "ep", "green", api.RolloutRequest{}); !errors.As(err, &p) || !p.Conflict || !strings.Contains(p.Msg, "no live traffic on another deployment") {
		t.Errorf("nothing to move from: %v", err)
	}
	if _, err := f.st.UpdateDeployment(bg, "ep", "blue", func(d *store.Deployment) error { d.State = store.StateUpdating; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ops.Start(bg, "ep", "blue", api.RolloutRequest{}); !errors.As(err, &p) || !strings.Contains(p.Msg, "is Updating") {
		t.Errorf("a deployment not ready: %v", err)
	}
}
