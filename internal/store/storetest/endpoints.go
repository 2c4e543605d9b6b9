package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

func endpoint(name string) store.Endpoint {
	return store.Endpoint{
		Name:         name,
		Spec:         json.RawMessage(`{"name":"` + name + `","auth_mode":"key","tags":{"a":"b"}}`),
		AuthMode:     "key",
		PrimaryKey:   "pk-" + name,
		SecondaryKey: "sk-" + name,
		Traffic:      map[string]int{"blue": 90, "green": 10},
		Mirror:       map[string]int{"green": 5},
		State:        store.StateCreating,
	}
}

func testEndpoint(t *testing.T, s store.Store) {
	in := endpoint("my-endpoint")
	got := must(s.CreateEndpoint(bg, in))(t)
	checkUTC(t, "create", got.CreatedAt, got.UpdatedAt)
	if got.Generation != 1 {
		t.Errorf("Generation: got %d, want 1", got.Generation)
	}
	if got.ID == "" {
		t.Error("ID: got empty, want a new random one")
	}
	want := in
	want.Generation, want.CreatedAt, want.UpdatedAt, want.ID = 1, got.CreatedAt, got.UpdatedAt, got.ID
	diff(t, "CreateEndpoint", got, want)
	diff(t, "GetEndpoint", must(s.GetEndpoint(bg, "my-endpoint"))(t), want)

	_, err := s.CreateEndpoint(bg, endpoint("my-endpoint"))
	wantErr(t, "create twice", err, store.ErrExists)
	_, err = s.GetEndpoint(bg, "nope")
	wantErr(t, "get unknown", err, store.ErrNotFound)

	// A minimal record: nil spec and maps, explicit generation and times.
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	min := store.Endpoint{Name: "a-min", ID: "given-id", Generation: 7, CreatedAt: created, UpdatedAt: created}
	got = must(s.CreateEndpoint(bg, min))(t)
	diff(t, "minimal", got, min)
	diff(t, "minimal get", must(s.GetEndpoint(bg, "a-min"))(t), min)

	// Deleted and created again: another endpoint, with another ID.
	first := must(s.CreateEndpoint(bg, endpoint("again")))(t)
	if err := s.DeleteEndpoint(bg, "again"); err != nil {
		t.Fatal(err)
	}
	second := must(s.CreateEndpoint(bg, endpoint("again")))(t)
	if second.ID == "" || second.ID == first.ID {
		t.Errorf("re-created endpoint ID: got %q, want new (the first was %q)", second.ID, first.ID)
	}
	if err := s.DeleteEndpoint(bg, "again"); err != nil {
		t.Fatal(err)
	}

	list := must(s.ListEndpoints(bg))(t)
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	diff(t, "ListEndpoints names", names, []string{"a-min", "my-endpoint"})
}

func testUpdateEndpoint(t *testing.T, s store.Store) {
	orig := must(s.CreateEndpoint(bg, endpoint("ep")))(t)

	t.Run("fn error is returned as is and nothing is written", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := s.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error {
			e.State = store.StateFailed
			return boom
		})
		if err != boom {
			t.Errorf("got %v, want the fn's error itself", err)
		}
		diff(t, "after failed update", must(s.GetEndpoint(bg, "ep"))(t), orig)
	})

	t.Run("unknown endpoint", func(t *testing.T) {
		called := false
		_, err := s.UpdateEndpoint(bg, "nope", func(*store.Endpoint) error { called = true; return nil })
		wantErr(t, "UpdateEndpoint", err, store.ErrNotFound)
		if called {
			t.Error("fn called for a missing endpoint")
		}
	})

	steps := []struct {
		name    string
		fn      func(*store.Endpoint)
		wantGen int64
	}{
		{"status only keeps generation", func(e *store.Endpoint) { e.State, e.Reason = store.StateSucceeded, "ok" }, 1},
		{"nothing changed", func(*store.Endpoint) {}, 1},
		{"same spec re-encoded", func(e *store.Endpoint) {
			e.Spec = json.RawMessage(`{ "tags": {"a": "b"}, "auth_mode": "key", "name": "ep" }`)
		}, 1},
		{"traffic bumps", func(e *store.Endpoint) { e.Traffic["blue"], e.Traffic["green"] = 0, 100 }, 2},
		{"mirror bumps", func(e *store.Endpoint) { e.Mirror = nil }, 3},
		{"spec bumps", func(e *store.Endpoint) { e.Spec = json.RawMessage(`{"name":"ep","description":"d"}`) }, 4},
		{"key bumps", func(e *store.Endpoint) { e.PrimaryKey = "new" }, 5},
		{"auth mode bumps", func(e *store.Endpoint) { e.AuthMode = "aml_token" }, 6},
		{"token generation bumps", func(e *store.Endpoint) { e.TokenGeneration++ }, 7},
		{"explicit generation wins", func(e *store.Endpoint) { e.Traffic = map[string]int{"green": 100}; e.Generation = 42 }, 42},
		{"name, ID and created time cannot change", func(e *store.Endpoint) {
			e.Name, e.ID, e.CreatedAt = "other", "other-id", time.Unix(0, 0)
		}, 42},
	}
	prev := orig
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error {
				diff(t, "fn saw the stored record", *e, prev)
				st.fn(e)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Generation != st.wantGen {
				t.Errorf("Generation: got %d, want %d", got.Generation, st.wantGen)
			}
			if got.Name != "ep" || !got.CreatedAt.Equal(orig.CreatedAt) || got.ID != orig.ID {
				t.Errorf("key fields: got %q %q %v, want ep %q %v", got.Name, got.ID, got.CreatedAt, orig.ID, orig.CreatedAt)
			}
			if got.UpdatedAt.Before(prev.UpdatedAt) {
				t.Errorf("UpdatedAt: got %v, want not before %v", got.UpdatedAt, prev.UpdatedAt)
			}
			checkUTC(t, "update", got.CreatedAt, got.UpdatedAt)
			diff(t, "GetEndpoint after update", must(s.GetEndpoint(bg, "ep"))(t), got)
			prev = got
		})
	}
	if _, err := s.GetEndpoint(bg, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("renamed by fn: got %v, want ErrNotFound for the new name", err)
	}
}

func deployment(ep, name string) store.Deployment {
	return store.Deployment{
		Endpoint: ep, Name: name,
		Spec:  json.RawMessage(`{"name":"` + name + `","instance_count":1}`),
		State: store.StateCreating,
	}
}

func testDeployment(t *testing.T, s store.Store) {
	_, err := s.CreateDeployment(bg, deployment("ep", "blue"))
	wantErr(t, "create without endpoint", err, store.ErrNotFound)

	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	must(s.CreateEndpoint(bg, endpoint("ap")))(t)
	in := deployment("ep", "blue")
	got := must(s.CreateDeployment(bg, in))(t)
	checkUTC(t, "create", got.CreatedAt, got.UpdatedAt)
	want := in
	want.Generation, want.CreatedAt, want.UpdatedAt = 1, got.CreatedAt, got.UpdatedAt
	diff(t, "CreateDeployment", got, want)
	diff(t, "GetDeployment", must(s.GetDeployment(bg, "ep", "blue"))(t), want)

	_, err = s.CreateDeployment(bg, deployment("ep", "blue"))
	wantErr(t, "create twice", err, store.ErrExists)
	// The same name under another endpoint is another deployment.
	must(s.CreateDeployment(bg, deployment("ap", "blue")))(t)
	must(s.CreateDeployment(bg, deployment("ep", "green")))(t)

	for _, tt := range []struct{ name, ep, dep string }{
		{"unknown deployment", "ep", "red"},
		{"unknown endpoint", "zz", "blue"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.GetDeployment(bg, tt.ep, tt.dep)
			wantErr(t, "GetDeployment", err, store.ErrNotFound)
		})
	}

	key := func(ds []store.Deployment) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Endpoint+"/"+d.Name)
		}
		return out
	}
	diff(t, "list one endpoint", key(must(s.ListDeployments(bg, "ep"))(t)), []string{"ep/blue", "ep/green"})
	diff(t, "list all", key(must(s.ListDeployments(bg, ""))(t)), []string{"ap/blue", "ep/blue", "ep/green"})
	diff(t, "list unknown endpoint", key(must(s.ListDeployments(bg, "zz"))(t)), []string(nil))

	// Delete: instances go, events stay.
	check(t, s.PutInstance(bg, store.Instance{Endpoint: "ep", Deployment: "green", Name: "green-0"}))
	ev := must(s.AppendEvent(bg, store.Event{Endpoint: "ep", Deployment: "green", Reason: "Created", Type: "Normal"}))(t)
	if err := s.DeleteDeployment(bg, "ep", "green"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteDeployment(bg, "ep", "green"), store.ErrNotFound)
	_, err = s.GetDeployment(bg, "ep", "green")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	if got := must(s.ListInstances(bg, "ep", "green"))(t); len(got) != 0 {
		t.Errorf("instances of a deleted deployment: got %d, want 0", len(got))
	}
	evs := must(s.ListEvents(bg, store.EventFilter{Endpoint: "ep", Deployment: "green"}))(t)
	if len(evs) != 1 || evs[0].ID != ev.ID {
		t.Errorf("events of a deleted deployment: got %v, want the one event kept", evs)
	}
	// A new deployment of the same name starts clean.
	must(s.CreateDeployment(bg, deployment("ep", "green")))(t)
	if got := must(s.ListInstances(bg, "ep", "green"))(t); len(got) != 0 {
		t.Errorf("instances of a re-created deployment: got %d, want 0", len(got))
	}
}

func testUpdateDeployment(t *testing.T, s store.Store) {
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	orig := must(s.CreateDeployment(bg, deployment("ep", "blue")))(t)

	boom := errors.New("boom")
	_, err := s.UpdateDeployment(bg, "ep", "blue", func(d *store.Deployment) error { d.State = "x"; return boom })
	if err != boom {
		t.Errorf("fn error: got %v, want the fn's error itself", err)
	}
	diff(t, "after failed update", must(s.GetDeployment(bg, "ep", "blue"))(t), orig)
	_, err = s.UpdateDeployment(bg, "ep", "red", func(*store.Deployment) error { return nil })
	wantErr(t, "unknown deployment", err, store.ErrNotFound)

	steps := []struct {
		name    string
		fn      func(*store.Deployment)
		wantGen int64
		wantObs int64
	}{
		{"status keeps generation", func(d *store.Deployment) {
			d.State, d.Reason, d.ObservedGeneration = store.StateSucceeded, "", 1
		}, 1, 1},
		{"spec bumps", func(d *store.Deployment) { d.Spec = json.RawMessage(`{"name":"blue","instance_count":2}`) }, 2, 1},
		{"spec re-encoded does not", func(d *store.Deployment) { d.Spec = json.RawMessage(`{"instance_count":2, "name":"blue"}`) }, 2, 1},
		{"explicit generation wins", func(d *store.Deployment) { d.Spec = json.RawMessage(`{}`); d.Generation = 9 }, 9, 1},
		{"keys cannot change", func(d *store.Deployment) { d.Endpoint, d.Name = "x", "y" }, 9, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := must(s.UpdateDeployment(bg, "ep", "blue", func(d *store.Deployment) error { st.fn(d); return nil }))(t)
			if got.Generation != st.wantGen || got.ObservedGeneration != st.wantObs {
				t.Errorf("generation, observed: got %d %d, want %d %d", got.Generation, got.ObservedGeneration, st.wantGen, st.wantObs)
			}
			if got.Endpoint != "ep" || got.Name != "blue" || !got.CreatedAt.Equal(orig.CreatedAt) {
				t.Errorf("key fields: got %s/%s %v, want ep/blue %v", got.Endpoint, got.Name, got.CreatedAt, orig.CreatedAt)
			}
			checkUTC(t, "update", got.CreatedAt, got.UpdatedAt)
			diff(t, "GetDeployment after update", must(s.GetDeployment(bg, "ep", "blue"))(t), got)
		})
	}
}

func testDeleteEndpointCascades(t *testing.T, s store.Store) {
	for _, ep := range []string{"ep", "keep"} {
		must(s.CreateEndpoint(bg, endpoint(ep)))(t)
		must(s.CreateDeployment(bg, deployment(ep, "blue")))(t)
		check(t, s.PutInstance(bg, store.Instance{Endpoint: ep, Deployment: "blue", Name: "blue-0"}))
		must(s.AppendEvent(bg, store.Event{Endpoint: ep, Reason: "Created"}))(t)
		must(s.AppendEvent(bg, store.Event{Endpoint: ep, Deployment: "blue", Instance: "blue-0", Reason: "Started"}))(t)
	}
	if err := s.DeleteEndpoint(bg, "ep"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete twice", s.DeleteEndpoint(bg, "ep"), store.ErrNotFound)
	_, err := s.GetEndpoint(bg, "ep")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	_, err = s.GetDeployment(bg, "ep", "blue")
	wantErr(t, "deployment of deleted endpoint", err, store.ErrNotFound)
	if n := len(must(s.ListDeployments(bg, "ep"))(t)); n != 0 {
		t.Errorf("deployments: got %d, want 0", n)
	}
	if n := len(must(s.ListInstances(bg, "ep", ""))(t)); n != 0 {
		t.Errorf("instances: got %d, want 0", n)
	}
	if n := len(must(s.ListEvents(bg, store.EventFilter{Endpoint: "ep"}))(t)); n != 0 {
		t.Errorf("events: got %d, want 0", n)
	}
	// The other endpoint is untouched.
	if n := len(must(s.ListDeployments(bg, "keep"))(t)); n != 1 {
		t.Errorf("other endpoint's deployments: got %d, want 1", n)
	}
	if n := len(must(s.ListInstances(bg, "keep", ""))(t)); n != 1 {
		t.Errorf("other endpoint's instances: got %d, want 1", n)
	}
	if n := len(must(s.ListEvents(bg, store.EventFilter{Endpoint: "keep"}))(t)); n != 2 {
		t.Errorf("other endpoint's events: got %d, want 2", n)
	}
	// The name is free again and the new endpoint starts empty.
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	if n := len(must(s.ListEvents(bg, store.EventFilter{Endpoint: "ep"}))(t)); n != 0 {
		t.Errorf("events of a re-created endpoint: got %d, want 0", n)
	}
}
