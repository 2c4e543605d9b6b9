package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

func testPlan(name, scoring string, maxConc int, env string) *resolve.Plan {
	return &resolve.Plan{
		Endpoint: "ep", Deployment: name, Runtime: driver.RuntimeGeneric, Command: []string{"srv"},
		Env:     map[string]string{"V": env},
		Scoring: resolve.Route{Port: 8000, Path: scoring}, OpenAPIPath: "/openapi.json",
		InstanceCount: 1, RequestTimeout: 3 * time.Second, MaxConcurrentPerInstance: maxConc,
		ModelName: "iris", ModelVersion: "2",
	}
}

func recordJSON(t *testing.T, p, prev *resolve.Plan) json.RawMessage {
	t.Helper()
	rec := resolve.Record{Document: json.RawMessage(`{}`), Plan: p}
	if prev != nil {
		rec.Previous = &resolve.Record{Document: json.RawMessage(`{}`), Plan: prev}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAssemble(t *testing.T) {
	v1 := testPlan("blue", "/score", 1, "1")
	v2 := testPlan("blue", "/predict", 4, "2")
	green := testPlan("green", "/score", 2, "1")
	eps := []store.Endpoint{
		{Name: "ep", AuthMode: "key", PrimaryKey: "p", SecondaryKey: "s", Traffic: map[string]int{"Blue": 90, "green": 10}, Mirror: map[string]int{}},
		{Name: "going", AuthMode: "key", State: store.StateDeleting},
	}
	deps := []store.Deployment{
		// blue is rolling from v1 to v2.
		{Endpoint: "ep", Name: "blue", Spec: recordJSON(t, v2, v1), State: store.StateUpdating, Generation: 2, ObservedGeneration: 1},
		// green's update to another version failed: its last good plan serves.
		{Endpoint: "ep", Name: "green", Spec: recordJSON(t, testPlan("green", "/broken", 9, "9"), green), State: store.StateFailed, Generation: 3, ObservedGeneration: 3},
		{Endpoint: "ep", Name: "gone", Spec: recordJSON(t, testPlan("gone", "/score", 1, "1"), nil), State: store.StateDeleting},
		{Endpoint: "going", Name: "blue", Spec: recordJSON(t, v1, nil), State: store.StateSucceeded},
	}
	rows := []store.Instance{
		{Endpoint: "ep", Deployment: "blue", Name: "blue-0", Addr: "127.0.0.1:1", Template: v1.TemplateHash(), Routable: true, ScoringPath: "/score", OpenAPIPath: "/openapi.json", MaxConcurrent: 1},
		{Endpoint: "ep", Deployment: "blue", Name: "blue-1", Addr: "unix:/run/blue-1.sock", Template: v2.TemplateHash(), Routable: true, ScoringPath: "/predict", OpenAPIPath: "/openapi.json", MaxConcurrent: 4},
		{Endpoint: "ep", Deployment: "blue", Name: "blue-2", Addr: "127.0.0.1:3", Template: v2.TemplateHash(), Routable: false, State: store.InstanceStarting},
		{Endpoint: "ep", Deployment: "green", Name: "green-0", Addr: "127.0.0.1:4", Template: green.TemplateHash(), Routable: true, ScoringPath: "/score", MaxConcurrent: 2},
		{Endpoint: "ep", Deployment: "gone", Name: "gone-0", Addr: "127.0.0.1:5", Routable: true},
	}
	got := assemble(eps, deps, rows)
	want := &gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{
		"ep": {
			Name: "ep", AuthMode: "key", Keys: []string{"p", "s"},
			Traffic: map[string]int{"blue": 90, "green": 10}, Mirror: map[string]int{},
			Deployments: map[string]*gateway.Deployment{
				"blue": {
					Name: "blue", ScoringPath: "/predict", OpenAPIPath: "/openapi.json", RequestTimeout: 3 * time.Second,
					MaxConcurrentPerInstance: 4, ModelName: "iris", ModelVersion: "2",
					Instances: []gateway.Instance{
						// The old instance keeps its own path and limit.
						{Name: "blue-0", Addr: "127.0.0.1:1", ScoringPath: "/score", OpenAPIPath: "/openapi.json", MaxConcurrent: 1},
						// The serving version's instance follows the deployment's limit.
						{Name: "blue-1", Addr: "unix:/run/blue-1.sock", ScoringPath: "/predict", OpenAPIPath: "/openapi.json"},
					},
				},
				"green": {
					Name: "green", ScoringPath: "/score", OpenAPIPath: "/openapi.json", RequestTimeout: 3 * time.Second,
					MaxConcurrentPerInstance: 2, ModelName: "iris", ModelVersion: "2",
					Instances: []gateway.Instance{{Name: "green-0", Addr: "127.0.0.1:4", ScoringPath: "/score"}},
				},
			},
		},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("assemble mismatch (-want +got):\n%s", d)
	}
}

// TestStoreSourceSeesChangesAtOnce: a gateway following the store learns of
// an instance that becomes routable well within a second, without a poll.
func TestStoreSourceSeesChangesAtOnce(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := testPlan("blue", "/score", 1, "1")
	if _, err := st.CreateEndpoint(ctx, store.Endpoint{Name: "ep", AuthMode: "key", Traffic: map[string]int{"blue": 100}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDeployment(ctx, store.Deployment{Endpoint: "ep", Name: "blue", Spec: recordJSON(t, p, nil), State: store.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := &storeSource{st: st, id: "gw-1"}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- gw.Follow(fctx, src, nil) }()
	defer func() { cancel(); <-done }()

	waitFor(t, time.Second, "the first table", func() bool { return len(gw.Stats()) == 1 })
	begin := time.Now()
	if err := st.PutInstance(ctx, store.Instance{Endpoint: "ep", Deployment: "blue", Name: "blue-0", Addr: "127.0.0.1:9", Template: p.TemplateHash(), Routable: true, ScoringPath: "/score"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the instance in the gateway's table", func() bool {
		s := gw.Stats()
		return len(s) == 1 && s[0].Ready == 1
	})
	t.Logf("routable instance reached the gateway's table in %s", time.Since(begin))
	// The gateway reports it as reachable.
	waitFor(t, 2*time.Second, "the gateway's report", func() bool {
		reps, _ := st.ListGatewayReports(ctx, time.Now().Add(-time.Minute))
		return len(reps) == 1 && reps[0].ID == "gw-1" && hasKey(reps[0].Instances, "ep/blue/blue-0")
	})
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
