package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/plumbline/plumbline/internal/store"
)

// pausing is the store with a hook in the two writes that race: the first
// write that runs while armed stops inside its transaction (after the
// handler's checks would have run, before the commit) until released, and
// the other write says when it is called (its handler's own checks done).
type pausing struct {
	store.Store
	armed   atomic.Int32 // 1: pause the traffic update; 2: pause the deletion
	watch   atomic.Int32 // the other one (2 or 1): say when it is called
	inside  chan struct{}
	release chan struct{}
	called  chan struct{}
}

func (p *pausing) pause(which int32) {
	if p.armed.CompareAndSwap(which, 0) {
		p.inside <- struct{}{}
		<-p.release
	}
}

func (p *pausing) call(which int32) {
	if p.watch.CompareAndSwap(which, 0) {
		p.called <- struct{}{}
	}
}

func (p *pausing) UpdateEndpoint(ctx context.Context, name string, fn func(*store.Endpoint) error) (store.Endpoint, error) {
	p.call(1)
	return p.Store.UpdateEndpoint(ctx, name, func(e *store.Endpoint) error {
		p.pause(1)
		return fn(e)
	})
}

func (p *pausing) UpdateEndpointWithDeployments(ctx context.Context, name string, fn func(*store.Endpoint, []store.Deployment) error) (store.Endpoint, error) {
	p.call(1)
	return p.Store.UpdateEndpointWithDeployments(ctx, name, func(e *store.Endpoint, deps []store.Deployment) error {
		p.pause(1)
		return fn(e, deps)
	})
}

func (p *pausing) UpdateDeployment(ctx context.Context, endpoint, name string, fn func(*store.Deployment) error) (store.Deployment, error) {
	p.call(2)
	return p.Store.UpdateDeployment(ctx, endpoint, name, func(d *store.Deployment) error {
		p.pause(2)
		return fn(d)
	})
}

func (p *pausing) UpdateDeploymentWithEndpoint(ctx context.Context, endpoint, name string, fn func(*store.Endpoint, *store.Deployment) error) (store.Deployment, error) {
	p.call(2)
	return p.Store.UpdateDeploymentWithEndpoint(ctx, endpoint, name, func(e *store.Endpoint, d *store.Deployment) error {
		p.pause(2)
		return fn(e, d)
	})
}

// TestTrafficUpdateRacingDelete is defect 1: a traffic update that sends
// everything to green and the deletion of green, released together, left
// 100 % of the traffic on the deleted deployment (7 of 60 rounds in the
// adversarial pass). Here one of the two is paused inside its write
// transaction while the other runs its checks and reaches its own write;
// then the first commits. Each check must see the other's commit: in 1 000
// rounds (the traffic update paused in half, the deletion in the other
// half), no round may end with traffic on a deployment being deleted.
func TestTrafficUpdateRacingDelete(t *testing.T) {
	p := &pausing{inside: make(chan struct{}), release: make(chan struct{}), called: make(chan struct{})}
	f := newFixtureWrapped(t, "", func(st store.Store) store.Store { p.Store = st; return p })
	ctx := context.Background()
	f.mustDo("POST", "/endpoints", []byte("name: race\nauth_mode: key\n"), http.StatusCreated)
	if _, err := f.st.CreateDeployment(ctx, store.Deployment{Endpoint: "race", Name: "blue", State: store.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	f.mustDo("PUT", "/endpoints/race", []byte("name: race\nauth_mode: key\ntraffic:\n  blue: 100\n"), http.StatusOK)

	const rounds = 1000
	bad, updated, deleted := 0, 0, 0
	for i := range rounds {
		green := fmt.Sprintf("green-%d", i)
		if _, err := f.st.CreateDeployment(ctx, store.Deployment{Endpoint: "race", Name: green, State: store.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
		paused := int32(1 + i%2)
		p.armed.Store(paused)
		p.watch.Store(3 - paused)
		var put, del int
		var wg sync.WaitGroup
		first := func() int {
			if paused == 1 {
				st, _ := f.do("PUT", "/endpoints/race", "application/yaml", []byte("name: race\nauth_mode: key\ntraffic:\n  "+green+": 100\n"))
				return st
			}
			st, _ := f.do("DELETE", "/endpoints/race/deployments/"+green, "", nil)
			return st
		}
		second := func() int {
			if paused == 1 {
				st, _ := f.do("DELETE", "/endpoints/race/deployments/"+green, "", nil)
				return st
			}
			st, _ := f.do("PUT", "/endpoints/race", "application/yaml", []byte("name: race\nauth_mode: key\ntraffic:\n  "+green+": 100\n"))
			return st
		}
		wg.Go(func() {
			if paused == 1 {
				put = first()
			} else {
				del = first()
			}
		})
		<-p.inside // the first is inside its write transaction
		wg.Go(func() {
			if paused == 1 {
				del = second()
			} else {
				put = second()
			}
		})
		<-p.called // the second has checked and reached its write
		p.release <- struct{}{}
		wg.Wait()

		ep, err := f.st.GetEndpoint(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		d, err := f.st.GetDeployment(ctx, "race", green)
		if err != nil {
			t.Fatal(err)
		}
		if d.State == store.StateDeleting && ep.Traffic[green] > 0 {
			bad++
			if bad <= 3 {
				t.Errorf("round %d: %d%% of the traffic on %s, which is being deleted (update %d, delete %d)", i, ep.Traffic[green], green, put, del)
			}
		}
		if put == http.StatusOK {
			updated++
		}
		if del == http.StatusAccepted {
			deleted++
		}
		// Back to blue for the next round.
		f.mustDo("PUT", "/endpoints/race", []byte("name: race\nauth_mode: key\ntraffic:\n  blue: 100\n"), http.StatusOK)
	}
	t.Logf("%d of %d rounds left traffic on a deployment being deleted (the traffic update won %d, the deletion %d)", bad, rounds, updated, deleted)
	if bad > 0 {
		t.Errorf("%d of %d rounds left traffic on a deployment being deleted", bad, rounds)
	}
	if updated == 0 || deleted == 0 {
		t.Errorf("each side should win some rounds: update %d, delete %d", updated, deleted)
	}
}
