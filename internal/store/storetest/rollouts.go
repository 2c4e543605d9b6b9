package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// testRollout: a rollout and its endpoint's traffic change together, one
// rollout per endpoint is active, the epoch follows the generation, and the
// history entry is written in the same transaction.
func testRollout(t *testing.T, s store.Store) {
	_, _, err := s.CreateRollout(bg, store.Rollout{Endpoint: "ep", Deployment: "green", State: store.RolloutRunning},
		func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error) { return nil, nil })
	wantErr(t, "create without endpoint", err, store.ErrNotFound)

	e0 := must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	v0 := must(s.RoutingVersion(bg))(t)
	plan := json.RawMessage(`{"steps":[10,100]}`)
	r, e := must2(s.CreateRollout(bg, store.Rollout{Endpoint: "ep", Deployment: "green", Plan: plan, State: store.RolloutRunning,
		StepStartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
			r.Baseline, r.BaselineMirror = e.Traffic, e.Mirror
			e.Traffic, e.Mirror = map[string]int{"blue": 90, "green": 10}, map[string]int{}
			return &store.TrafficChange{Cause: "rollout step 1", Entries: []store.TrafficEntry{{Deployment: "blue", Traffic: 90}, {Deployment: "green", Traffic: 10, Model: "m:2", ModelDigest: digest("m2")}}}, nil
		}))(t)
	if r.ID == 0 || r.Epoch != e0.Generation+1 || e.Generation != e0.Generation+1 {
		t.Errorf("created rollout %d with epoch %d and endpoint generation %d; want an ID and both %d", r.ID, r.Epoch, e.Generation, e0.Generation+1)
	}
	diff(t, "baseline", r.Baseline, e0.Traffic)
	got := must(s.GetRollout(bg, r.ID))(t)
	diff(t, "GetRollout", got, r)
	checkUTC(t, "rollout times", got.CreatedAt, got.UpdatedAt, got.StepStartedAt)
	if !got.FinishedAt.IsZero() {
		t.Errorf("FinishedAt %v, want zero while running", got.FinishedAt)
	}
	ep := must(s.GetEndpoint(bg, "ep"))(t)
	diff(t, "endpoint traffic", ep.Traffic, map[string]int{"blue": 90, "green": 10})
	if v := must(s.RoutingVersion(bg))(t); v <= v0 {
		t.Errorf("routing version %d after a rollout started, want more than %d", v, v0)
	}
	hist := must(s.ListTrafficChanges(bg, "ep", 0, 0))(t)
	if len(hist) != 1 || hist[0].RolloutID != r.ID || hist[0].Generation != e.Generation || hist[0].Entries[1].Model != "m:2" {
		t.Fatalf("history %+v, want one entry of rollout %d at generation %d", hist, r.ID, e.Generation)
	}

	_, _, err = s.CreateRollout(bg, store.Rollout{Endpoint: "ep", Deployment: "blue", State: store.RolloutRunning},
		func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error) { return nil, nil })
	wantErr(t, "a second active rollout", err, store.ErrExists)

	// fn's error aborts everything.
	boom := errors.New("boom")
	_, _, err = s.UpdateRollout(bg, r.ID, func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		e.Traffic = map[string]int{"green": 100}
		return nil, boom
	})
	if err != boom {
		t.Errorf("fn error: got %v, want it unwrapped", err)
	}
	diff(t, "traffic after an aborted update", must(s.GetEndpoint(bg, "ep"))(t).Traffic, map[string]int{"blue": 90, "green": 10})

	// A state change alone keeps the epoch; a traffic change moves it.
	r2, e2 := must2(s.UpdateRollout(bg, r.ID, func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		r.State = store.RolloutPaused
		return nil, nil
	}))(t)
	if r2.Epoch != r.Epoch || e2.Generation != e.Generation || r2.State != store.RolloutPaused {
		t.Errorf("pause: epoch %d, generation %d, state %s; want %d, %d, Paused", r2.Epoch, e2.Generation, r2.State, r.Epoch, e.Generation)
	}
	r3, e3 := must2(s.UpdateRollout(bg, r.ID, func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		r.State, r.Reason, r.FinishedAt = store.RolloutRolledBack, "error rate", time.Now()
		e.Traffic, e.Mirror = r.Baseline, r.BaselineMirror
		return &store.TrafficChange{Cause: "rolled back"}, nil
	}))(t)
	if r3.Epoch != e3.Generation || e3.Generation != e2.Generation+1 || r3.FinishedAt.IsZero() {
		t.Errorf("rollback: epoch %d, generation %d, finished %v", r3.Epoch, e3.Generation, r3.FinishedAt)
	}
	diff(t, "traffic after the rollback", must(s.GetEndpoint(bg, "ep"))(t).Traffic, e0.Traffic)

	// Finished: another may start.
	r4, _ := must2(s.CreateRollout(bg, store.Rollout{Endpoint: "ep", Deployment: "green", State: store.RolloutRunning},
		func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error) { return nil, nil }))(t)
	all := must(s.ListRollouts(bg, store.RolloutFilter{Endpoint: "ep"}))(t)
	if len(all) != 2 || all[0].ID != r.ID || all[1].ID != r4.ID {
		t.Errorf("ListRollouts: %d rollouts, want %d then %d", len(all), r.ID, r4.ID)
	}
	active := must(s.ListRollouts(bg, store.RolloutFilter{ActiveOnly: true}))(t)
	if len(active) != 1 || active[0].ID != r4.ID {
		t.Errorf("active rollouts: %+v, want only %d", active, r4.ID)
	}
	if last := must(s.ListRollouts(bg, store.RolloutFilter{Endpoint: "ep", Deployment: "green", Limit: 1}))(t); len(last) != 1 || last[0].ID != r4.ID {
		t.Errorf("the newest rollout of green: %+v, want %d", last, r4.ID)
	}
	if h := must(s.ListTrafficChanges(bg, "ep", r.ID, 1))(t); len(h) != 1 || h[0].Cause != "rolled back" {
		t.Errorf("the newest history entry of rollout %d: %+v", r.ID, h)
	}
	_, _, err = s.UpdateRollout(bg, 9999, func(*store.Rollout, *store.Endpoint) (*store.TrafficChange, error) { return nil, nil })
	wantErr(t, "update a missing rollout", err, store.ErrNotFound)

	check(t, s.DeleteEndpoint(bg, "ep"))
	_, err = s.GetRollout(bg, r.ID)
	wantErr(t, "rollout after its endpoint was deleted", err, store.ErrNotFound)
	if h := must(s.ListTrafficChanges(bg, "ep", 0, 0))(t); len(h) != 0 {
		t.Errorf("history after the endpoint was deleted: %+v", h)
	}
}

// testStats: gateway figures are put by key, listed from an epoch, and
// pruned by age; diff samples keep the newest per comparison.
func testStats(t *testing.T, s store.Store) {
	v0 := must(s.RoutingVersion(bg))(t)
	row := func(src string, epoch int64, subject, fig string) store.Stats {
		return store.Stats{Source: src, Endpoint: "ep", Epoch: epoch, Kind: "deployment", Subject: subject, Figures: json.RawMessage(fig)}
	}
	check(t, s.PutStats(bg, []store.Stats{row("gw-a", 4, "green", `{"requests":1}`), row("gw-b", 4, "green", `{"requests":2}`), row("gw-a", 3, "green", `{"requests":9}`)}))
	check(t, s.PutStats(bg, []store.Stats{row("gw-a", 4, "green", `{"requests":5}`)}))
	got := must(s.ListStats(bg, "ep", 4))(t)
	if len(got) != 2 || string(got[0].Figures) != `{"requests":5}` || got[0].Source != "gw-a" || got[1].Source != "gw-b" {
		t.Errorf("ListStats from epoch 4: %+v", got)
	}
	checkUTC(t, "stats updated", got[0].UpdatedAt)
	if n := len(must(s.ListStats(bg, "ep", 0))(t)); n != 3 {
		t.Errorf("ListStats from epoch 0: %d rows, want 3", n)
	}
	if v := must(s.RoutingVersion(bg))(t); v != v0 {
		t.Errorf("stats changed the routing version (%d → %d)", v0, v)
	}
	if n := must(s.DeleteStats(bg, time.Now().Add(-time.Hour)))(t); n != 0 {
		t.Errorf("deleted %d fresh rows", n)
	}
	if n := must(s.DeleteStats(bg, time.Now().Add(time.Second)))(t); n != 3 {
		t.Errorf("deleted %d old rows, want 3", n)
	}

	var samples []store.DiffSample
	for i := range 5 {
		samples = append(samples, store.DiffSample{Endpoint: "ep", Epoch: int64(i), Kind: "mirror", Subject: "blue>green", Body: json.RawMessage(`{"n":` + string(rune('0'+i)) + `}`)})
	}
	samples = append(samples, store.DiffSample{Endpoint: "ep", Epoch: 4, Kind: "replay", Subject: "blue>green", Body: json.RawMessage(`{"r":1}`)})
	check(t, s.AppendDiffSamples(bg, samples, 3))
	ds := must(s.ListDiffSamples(bg, "ep", 0, 0))(t)
	if len(ds) != 4 || string(ds[0].Body) != `{"r":1}` || string(ds[1].Body) != `{"n":4}` || string(ds[3].Body) != `{"n":2}` {
		t.Errorf("diff samples kept: %+v; want the replay one and the newest 3 mirror ones, newest first", ds)
	}
	if ds := must(s.ListDiffSamples(bg, "ep", 4, 1))(t); len(ds) != 1 || ds[0].Kind != "replay" {
		t.Errorf("newest sample of epoch ≥ 4: %+v", ds)
	}
}

func must2[A, B any](a A, b B, err error) func(*testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}
