package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/plumbline/plumbline/internal/store"
)

func testUpdateEndpointWithDeployments(t *testing.T, s store.Store) {
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	must(s.CreateDeployment(bg, deployment("ep", "green")))(t)
	must(s.CreateDeployment(bg, deployment("ep", "blue")))(t)
	var seen []string
	got, err := s.UpdateEndpointWithDeployments(bg, "ep", func(e *store.Endpoint, deps []store.Deployment) error {
		for _, d := range deps {
			seen = append(seen, d.Endpoint+"/"+d.Name)
		}
		e.Traffic = map[string]int{"blue": 100}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "deployments fn saw", seen, []string{"ep/blue", "ep/green"})
	diff(t, "traffic", got.Traffic, map[string]int{"blue": 100})
	diff(t, "stored", must(s.GetEndpoint(bg, "ep"))(t), got)

	boom := errors.New("boom")
	if _, err := s.UpdateEndpointWithDeployments(bg, "ep", func(e *store.Endpoint, _ []store.Deployment) error {
		e.Traffic = nil
		return boom
	}); err != boom {
		t.Errorf("fn's error: got %v, want it as is", err)
	}
	diff(t, "after a failed update", must(s.GetEndpoint(bg, "ep"))(t), got)
	_, err = s.UpdateEndpointWithDeployments(bg, "nope", func(*store.Endpoint, []store.Deployment) error { return nil })
	wantErr(t, "unknown endpoint", err, store.ErrNotFound)
}

func testUpdateDeploymentWithEndpoint(t *testing.T, s store.Store) {
	must(s.CreateEndpoint(bg, endpoint("ep")))(t)
	must(s.CreateDeployment(bg, deployment("ep", "green")))(t)
	var sawTraffic map[string]int
	got, err := s.UpdateDeploymentWithEndpoint(bg, "ep", "green", func(e *store.Endpoint, d *store.Deployment) error {
		sawTraffic = e.Traffic
		d.State = store.StateDeleting
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "traffic fn saw", sawTraffic, endpoint("ep").Traffic)
	if got.State != store.StateDeleting {
		t.Errorf("state: got %s", got.State)
	}
	diff(t, "stored", must(s.GetDeployment(bg, "ep", "green"))(t), got)
	_, err = s.UpdateDeploymentWithEndpoint(bg, "ep", "nope", func(*store.Endpoint, *store.Deployment) error { return nil })
	wantErr(t, "unknown deployment", err, store.ErrNotFound)
	_, err = s.UpdateDeploymentWithEndpoint(bg, "nope", "green", func(*store.Endpoint, *store.Deployment) error { return nil })
	wantErr(t, "unknown endpoint", err, store.ErrNotFound)
}

// testTrafficDeleteRace plays the race of defect 1 many times: a traffic
// update sending everything to green and the deletion of green, released
// together, each checking the other's rule in its own transaction. Whatever
// the order, green must never end up deleting with traffic.
func testTrafficDeleteRace(t *testing.T, s store.Store) {
	const rounds = 50
	bad := 0
	for i := range rounds {
		ep := fmt.Sprintf("race-%d", i)
		e := endpoint(ep)
		e.Traffic, e.Mirror = map[string]int{"blue": 100}, nil
		must(s.CreateEndpoint(bg, e))(t)
		for _, n := range []string{"blue", "green"} {
			d := deployment(ep, n)
			d.State = store.StateSucceeded
			must(s.CreateDeployment(bg, d))(t)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			s.UpdateEndpointWithDeployments(bg, ep, func(e *store.Endpoint, deps []store.Deployment) error {
				for _, d := range deps {
					if d.Name == "green" && d.State == store.StateDeleting {
						return errors.New("green is being deleted")
					}
				}
				e.Traffic = map[string]int{"green": 100}
				return nil
			})
		})
		wg.Go(func() {
			<-start
			s.UpdateDeploymentWithEndpoint(bg, ep, "green", func(e *store.Endpoint, d *store.Deployment) error {
				if e.Traffic["green"] > 0 {
					return errors.New("green has traffic")
				}
				d.State = store.StateDeleting
				return nil
			})
		})
		close(start)
		wg.Wait()
		e = must(s.GetEndpoint(bg, ep))(t)
		d := must(s.GetDeployment(bg, ep, "green"))(t)
		if d.State == store.StateDeleting && e.Traffic["green"] > 0 {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rounds left traffic on a deployment being deleted", bad, rounds)
	}
}
