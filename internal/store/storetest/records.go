package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testInstance(t *testing.T, s store.Store) {
	in := store.Instance{Endpoint: "ep", Deployment: "blue", Name: "blue-0", Driver: "process",
		Data: json.RawMessage(`{"pid":123,"addr":"127.0.0.1:4000"}`)}
	wantErr(t, "put without deployment", s.PutInstance(bg, in), store.ErrNotFound)

	for _, ep := range []string{"ep", "ap"} {
		must(s.CreateEndpoint(bg, endpoint(ep)))(t)
		must(s.CreateDeployment(bg, deployment(ep, "blue")))(t)
		must(s.CreateDeployment(bg, deployment(ep, "green")))(t)
	}
	check(t, s.PutInstance(bg, in))
	got := must(s.ListInstances(bg, "ep", "blue"))(t)
	if len(got) != 1 {
		t.Fatalf("ListInstances: got %d, want 1", len(got))
	}
	first := got[0]
	checkUTC(t, "put", first.CreatedAt, first.UpdatedAt)
	want := in
	want.CreatedAt, want.UpdatedAt = first.CreatedAt, first.UpdatedAt
	diff(t, "ListInstances", first, want)

	// Replace: new data, CreatedAt kept.
	time.Sleep(2 * time.Millisecond)
	in.Data, in.Driver = json.RawMessage(`{"pid":456}`), "docker"
	check(t, s.PutInstance(bg, in))
	got = must(s.ListInstances(bg, "ep", "blue"))(t)
	if len(got) != 1 {
		t.Fatalf("after replace: got %d instances, want 1", len(got))
	}
	want = in
	want.CreatedAt, want.UpdatedAt = first.CreatedAt, got[0].UpdatedAt
	diff(t, "replaced", got[0], want)
	if !got[0].UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("UpdatedAt: got %v, want after %v", got[0].UpdatedAt, first.UpdatedAt)
	}

	for _, x := range []store.Instance{
		{Endpoint: "ep", Deployment: "blue", Name: "blue-1"},
		{Endpoint: "ep", Deployment: "green", Name: "green-0"},
		{Endpoint: "ap", Deployment: "blue", Name: "blue-0"},
	} {
		check(t, s.PutInstance(bg, x))
	}
	key := func(xs []store.Instance) []string {
		var out []string
		for _, x := range xs {
			out = append(out, x.Endpoint+"/"+x.Deployment+"/"+x.Name)
		}
		return out
	}
	tests := []struct {
		name, ep, dep string
		want          []string
	}{
		{"one deployment", "ep", "blue", []string{"ep/blue/blue-0", "ep/blue/blue-1"}},
		{"one endpoint", "ep", "", []string{"ep/blue/blue-0", "ep/blue/blue-1", "ep/green/green-0"}},
		{"all", "", "", []string{"ap/blue/blue-0", "ep/blue/blue-0", "ep/blue/blue-1", "ep/green/green-0"}},
		{"none", "zz", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff(t, "ListInstances", key(must(s.ListInstances(bg, tt.ep, tt.dep))(t)), tt.want)
		})
	}

	check(t, s.DeleteInstance(bg, "ep", "blue", "blue-0"))
	wantErr(t, "delete twice", s.DeleteInstance(bg, "ep", "blue", "blue-0"), store.ErrNotFound)
	diff(t, "after delete", key(must(s.ListInstances(bg, "ep", "blue"))(t)), []string{"ep/blue/blue-1"})
}

func testEvent(t *testing.T, s store.Store) {
	_, err := s.AppendEvent(bg, store.Event{Endpoint: "nope", Reason: "Created"})
	wantErr(t, "unknown endpoint", err, store.ErrNotFound)

	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	must(s.CreateEndpoint(bg, endpoint("ap")))(t)
	at := time.Date(2025, 6, 7, 8, 9, 10, 11000, time.FixedZone("X", -7200))
	e1 := must(s.AppendEvent(bg, store.Event{Endpoint: "ep", Type: "Normal", Reason: "Created", Message: "endpoint created", Time: at}))(t)
	if !e1.Time.Equal(at) {
		t.Errorf("Time: got %v, want %v", e1.Time, at)
	}
	checkUTC(t, "given time", e1.Time)

	type ev struct{ ep, dep, inst, reason string }
	var all []store.Event
	all = append(all, e1)
	for _, x := range []ev{
		{"ep", "blue", "", "Created"},
		{"ep", "blue", "blue-0", "Started"},
		{"ap", "", "", "Created"},
		{"ep", "blue", "blue-0", "Ready"},
		{"ep", "green", "green-0", "Started"},
		{"ep", "blue", "blue-1", "Started"},
	} {
		got := must(s.AppendEvent(bg, store.Event{Endpoint: x.ep, Deployment: x.dep, Instance: x.inst, Type: "Normal", Reason: x.reason}))(t)
		checkUTC(t, "default time", got.Time)
		if got.ID <= all[len(all)-1].ID {
			t.Errorf("ID: got %d, want > %d", got.ID, all[len(all)-1].ID)
		}
		all = append(all, got)
	}
	pick := func(idx ...int) []store.Event {
		var out []store.Event
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	tests := []struct {
		name string
		f    store.EventFilter
		want []store.Event
	}{
		{"all", store.EventFilter{}, all},
		{"endpoint", store.EventFilter{Endpoint: "ep"}, pick(0, 1, 2, 4, 5, 6)},
		{"deployment", store.EventFilter{Endpoint: "ep", Deployment: "blue"}, pick(1, 2, 4, 6)},
		{"instance", store.EventFilter{Endpoint: "ep", Deployment: "blue", Instance: "blue-0"}, pick(2, 4)},
		{"after id", store.EventFilter{Endpoint: "ep", AfterID: all[4].ID}, pick(5, 6)},
		{"limit is the newest, oldest first", store.EventFilter{Endpoint: "ep", Limit: 3}, pick(4, 5, 6)},
		{"limit larger than count", store.EventFilter{Endpoint: "ep", Deployment: "green", Limit: 10}, pick(5)},
		{"after id and limit pages forward", store.EventFilter{AfterID: all[0].ID, Limit: 2}, pick(1, 2)},
		{"nothing after the last", store.EventFilter{AfterID: all[6].ID}, nil},
		{"unknown endpoint", store.EventFilter{Endpoint: "zz"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff(t, "ListEvents", must(s.ListEvents(bg, tt.f))(t), tt.want)
		})
	}

	// IDs are never reused, even after the newest events are deleted.
	last := all[len(all)-1].ID
	check(t, s.DeleteEndpoint(bg, "ep"))
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	e := must(s.AppendEvent(bg, store.Event{Endpoint: "ep", Reason: "Created"}))(t)
	if e.ID <= last {
		t.Errorf("ID after deletion: got %d, want > %d", e.ID, last)
	}
}

func testSetting(t *testing.T, s store.Store) {
	_, err := s.GetSetting(bg, "signing-key")
	wantErr(t, "unset", err, store.ErrNotFound)
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "signing-key", []byte("secret")},
		{"binary", "bin", []byte{0, 1, 2, 0xff, 0}},
		{"overwrite", "signing-key", []byte("rotated")},
		{"empty", "empty", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, s.PutSetting(bg, tt.key, tt.value))
			got := must(s.GetSetting(bg, tt.key))(t)
			if !bytes.Equal(got, tt.value) {
				t.Errorf("GetSetting(%s): got %q, want %q", tt.key, got, tt.value)
			}
		})
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.CreateEndpoint(ctx, endpoint("ep")); err == nil {
		t.Error("CreateEndpoint with a canceled context: got nil error, want one")
	}
	if _, err := s.ListEndpoints(ctx); err == nil {
		t.Error("ListEndpoints with a canceled context: got nil error, want one")
	}
	if _, err := s.GetEndpoint(bg, "ep"); err == nil {
		t.Error("endpoint created despite the canceled context")
	}
}

// testConcurrentAutoVersion: parallel creates without a version each get a
// distinct number, and together exactly 1..n.
func testConcurrentAutoVersion(t *testing.T, s store.Store) {
	const n = 16
	var wg sync.WaitGroup
	versions := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			m, err := s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Digest: digest(fmt.Sprint(i))})
			if err != nil {
				t.Error(err)
				return
			}
			versions <- m.Version
		})
	}
	wg.Wait()
	close(versions)
	seen := map[string]bool{}
	for v := range versions {
		if seen[v] {
			t.Errorf("version %s assigned twice", v)
		}
		seen[v] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Errorf("version %d: got none, want assigned", i)
		}
	}
}

// testConcurrentUpdateEndpoint: parallel read-modify-write updates lose
// nothing.
func testConcurrentUpdateEndpoint(t *testing.T, s store.Store) {
	const workers, each = 8, 5
	must(s.CreateEndpoint(bg, store.Endpoint{Name: "ep", Traffic: map[string]int{"blue": 0}}))(t)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := s.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error {
					e.Traffic["blue"]++
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := must(s.GetEndpoint(bg, "ep"))(t)
	if got.Traffic["blue"] != workers*each {
		t.Errorf("counter: got %d, want %d", got.Traffic["blue"], workers*each)
	}
	if got.Generation != 1+workers*each {
		t.Errorf("Generation: got %d, want %d", got.Generation, 1+workers*each)
	}
}
