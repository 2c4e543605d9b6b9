package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// testInstanceState: every observed field of an instance round-trips.
func testInstanceState(t *testing.T, s store.Store) {
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	must(s.CreateDeployment(bg, deployment("ep", "blue")))(t)
	in := store.Instance{
		Endpoint: "ep", Deployment: "blue", Name: "blue-0", Driver: "process",
		ID: "ep.blue.blue-0", Addr: "unix:/var/lib/plumbline/instances/ep.blue.blue-0/sock", Template: "t1:abc",
		State: store.InstanceReady, Routable: true, ScoringPath: "/predict", OpenAPIPath: "/openapi.json",
		MaxConcurrent: 3, Restarts: 2, LastProbe: "HTTP probe failed with statuscode: 503",
		LastProbeAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), PID: 4242,
		StartedAt: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
	}
	check(t, s.PutInstance(bg, in))
	got := must(s.ListInstances(bg, "ep", "blue"))(t)
	if len(got) != 1 {
		t.Fatalf("ListInstances: got %d, want 1", len(got))
	}
	want := in
	want.CreatedAt, want.UpdatedAt = got[0].CreatedAt, got[0].UpdatedAt
	diff(t, "ListInstances", got[0], want)

	// Zero times stay zero.
	in.LastProbeAt, in.StartedAt, in.Routable, in.State = time.Time{}, time.Time{}, false, store.InstanceStopping
	check(t, s.PutInstance(bg, in))
	got = must(s.ListInstances(bg, "ep", "blue"))(t)
	if !got[0].LastProbeAt.IsZero() || !got[0].StartedAt.IsZero() || got[0].Routable || got[0].State != store.InstanceStopping {
		t.Errorf("after put with zero times and not routable: got %+v", got[0])
	}
}

// testRoutingVersion: every change of endpoints, deployments and instances
// raises the version, and WaitRoutingChange returns at once for a change
// committed while it waits.
func testRoutingVersion(t *testing.T, s store.Store) {
	v0 := must(s.RoutingVersion(bg))(t)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"create endpoint", func() error { _, err := s.CreateEndpoint(bg, endpoint("ep")); return err }},
		{"update endpoint", func() error {
			_, err := s.UpdateEndpoint(bg, "ep", func(e *store.Endpoint) error { e.Traffic = map[string]int{"blue": 100}; return nil })
			return err
		}},
		{"create deployment", func() error { _, err := s.CreateDeployment(bg, deployment("ep", "blue")); return err }},
		{"update deployment", func() error {
			_, err := s.UpdateDeployment(bg, "ep", "blue", func(d *store.Deployment) error { d.State = store.StateSucceeded; return nil })
			return err
		}},
		{"put instance", func() error {
			return s.PutInstance(bg, store.Instance{Endpoint: "ep", Deployment: "blue", Name: "blue-0"})
		}},
		{"delete instance", func() error { return s.DeleteInstance(bg, "ep", "blue", "blue-0") }},
		{"delete deployment", func() error { return s.DeleteDeployment(bg, "ep", "blue") }},
		{"delete endpoint", func() error { return s.DeleteEndpoint(bg, "ep") }},
	}
	prev := v0
	for _, st := range steps {
		check(t, st.fn())
		v := must(s.RoutingVersion(bg))(t)
		if v <= prev {
			t.Errorf("after %s: routing version %d, want more than %d", st.name, v, prev)
		}
		prev = v
	}
	// Nothing changed: the wait ends with ctx.
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if v, err := s.WaitRoutingChange(ctx, prev); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitRoutingChange with no change = %d, %v; want the context's deadline", v, err)
	}
	// An older version returns at once.
	if v, err := s.WaitRoutingChange(bg, v0); err != nil || v != prev {
		t.Errorf("WaitRoutingChange(%d) = %d, %v; want %d at once", v0, v, err, prev)
	}
	// A change while waiting wakes the waiter well within a second.
	type res struct {
		v   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		v, err := s.WaitRoutingChange(ctx, prev)
		done <- res{v, err}
	}()
	time.Sleep(50 * time.Millisecond)
	check(t, func() error { _, err := s.CreateEndpoint(bg, endpoint("other")); return err }())
	r := <-done
	if r.err != nil || r.v <= prev {
		t.Errorf("WaitRoutingChange across a change = %d, %v; want more than %d", r.v, r.err, prev)
	}
}

func testGatewayReport(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	check(t, s.PutGatewayReport(bg, store.GatewayReport{ID: "gw-b", Addr: "127.0.0.1:1", Instances: map[string]int{"ep/blue/blue-0": 2, "ep/blue/blue-1": 0}}))
	check(t, s.PutGatewayReport(bg, store.GatewayReport{ID: "gw-a", Addr: "127.0.0.1:2"}))
	got := must(s.ListGatewayReports(bg, before))(t)
	if len(got) != 2 || got[0].ID != "gw-a" || got[1].ID != "gw-b" {
		t.Fatalf("ListGatewayReports = %+v, want gw-a, gw-b", got)
	}
	checkUTC(t, "report", got[0].UpdatedAt, got[1].UpdatedAt)
	diff(t, "report gw-b", got[1].Instances, map[string]int{"ep/blue/blue-0": 2, "ep/blue/blue-1": 0})
	if len(got[0].Instances) != 0 {
		t.Errorf("report gw-a instances = %v, want none", got[0].Instances)
	}
	// Replace.
	check(t, s.PutGatewayReport(bg, store.GatewayReport{ID: "gw-b", Instances: map[string]int{"ep/green/green-0": 1}}))
	got = must(s.ListGatewayReports(bg, before))(t)
	diff(t, "replaced report", got[1].Instances, map[string]int{"ep/green/green-0": 1})
	// Stale reports are left out.
	if got := must(s.ListGatewayReports(bg, time.Now().Add(time.Hour)))(t); len(got) != 0 {
		t.Errorf("ListGatewayReports(future) = %+v, want none", got)
	}
	check(t, s.DeleteGatewayReport(bg, "gw-a"))
	wantErr(t, "delete twice", s.DeleteGatewayReport(bg, "gw-a"), store.ErrNotFound)
	if got := must(s.ListGatewayReports(bg, before))(t); len(got) != 1 {
		t.Errorf("after delete: %d reports, want 1", len(got))
	}
}

func testLease(t *testing.T, s store.Store) {
	const ttl = 300 * time.Millisecond
	a := must(s.AcquireLease(bg, "reconciler", "a", ttl))(t)
	if a.Holder != "a" || a.Token < 1 || !a.ExpiresAt.After(time.Now()) {
		t.Fatalf("AcquireLease(a) = %+v, want a's, with a token and a future expiry", a)
	}
	check(t, s.CheckLease(bg, a))
	held, err := s.AcquireLease(bg, "reconciler", "b", ttl)
	wantErr(t, "b while a holds it", err, store.ErrLeaseHeld)
	if held.Holder != "a" {
		t.Errorf("AcquireLease(b) while held returned %+v, want a's lease", held)
	}
	// Renewal keeps the token.
	a2 := must(s.AcquireLease(bg, "reconciler", "a", ttl))(t)
	if a2.Token != a.Token {
		t.Errorf("renewal token = %d, want %d", a2.Token, a.Token)
	}
	// Expiry: b takes it with a new token, and a is fenced.
	time.Sleep(ttl + 50*time.Millisecond)
	wantErr(t, "check expired", s.CheckLease(bg, a2), store.ErrFenced)
	b := must(s.AcquireLease(bg, "reconciler", "b", ttl))(t)
	if b.Token <= a2.Token || b.Holder != "b" {
		t.Errorf("AcquireLease(b) after expiry = %+v, want b with a token above %d", b, a2.Token)
	}
	wantErr(t, "a after b took it", s.CheckLease(bg, a2), store.ErrFenced)
	check(t, s.CheckLease(bg, b))
	// Release lets a take it at once.
	check(t, s.ReleaseLease(bg, b))
	wantErr(t, "check released", s.CheckLease(bg, b), store.ErrFenced)
	a3 := must(s.AcquireLease(bg, "reconciler", "a", ttl))(t)
	if a3.Token <= b.Token {
		t.Errorf("token after release = %d, want above %d", a3.Token, b.Token)
	}
	// A stale release does nothing.
	check(t, s.ReleaseLease(bg, b))
	check(t, s.CheckLease(bg, a3))
	// Leases are independent by name.
	if _, err := s.AcquireLease(bg, "other", "b", ttl); err != nil {
		t.Errorf("AcquireLease(other) = %v", err)
	}
}
