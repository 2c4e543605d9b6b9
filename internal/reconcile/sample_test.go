package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// sampler is a SampleTester that answers what fail says for a plan's body.
type sampler struct {
	mu    sync.Mutex // protects calls
	calls []reconcile.SampleTarget
	fail  func(t reconcile.SampleTarget) error
}

func (s *sampler) TestSample(ctx context.Context, t reconcile.SampleTarget) error {
	s.mu.Lock()
	s.calls = append(s.calls, t)
	s.mu.Unlock()
	if s.fail != nil {
		return s.fail(t)
	}
	return nil
}

func (s *sampler) called() []reconcile.SampleTarget {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]reconcile.SampleTarget(nil), s.calls...)
}

// failing answers the sample request of a plan whose body is bad with the
// error a model would give.
func failing(t reconcile.SampleTarget) error {
	if strings.Contains(string(t.Body), "bad") {
		return errors.New(`answered 500 Internal Server Error: {"message":"object 'cyl' not found"}`)
	}
	return nil
}

func TestSampleRequestGatesReadiness(t *testing.T) {
	s := &sampler{fail: failing}
	e := start(t, func(c *reconcile.Config) { c.Sample = s })
	p := plan("ep", "blue", 2, nil)
	p.SampleRequest = []byte(`{"wt":[2.6]}`)
	e.create(p)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	e.waitRoutes("blue", 2, time.Second)
	calls := s.called()
	if len(calls) != 2 {
		t.Fatalf("sample request sent %d times, want once per instance (2): %+v", len(calls), calls)
	}
	for _, c := range calls {
		if c.Endpoint != "ep" || c.Deployment != "blue" || c.Path != "/score" || string(c.Body) != `{"wt":[2.6]}` || c.Addr == "" || c.Timeout != time.Second {
			t.Errorf("sample target %+v: want ep/blue, /score, the plan's body and timeout, an address", c)
		}
	}

	t.Run("a plan without one is not tested", func(t *testing.T) {
		e.create(plan("ep", "green", 1, nil))
		e.waitState("green", store.StateSucceeded, 5*time.Second)
		for _, c := range s.called() {
			if c.Deployment == "green" {
				t.Errorf("green has no sample request but was sent one: %+v", c)
			}
		}
	})
}

func TestSampleRequestFailureFailsCreationWithoutTraffic(t *testing.T) {
	s := &sampler{fail: failing}
	e := start(t, func(c *reconcile.Config) { c.Sample = s })
	p := plan("ep", "blue", 1, nil)
	p.SampleRequest = []byte(`{"bad":true}`)
	e.create(p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := e.routes("blue"); len(got) > 0 {
			t.Fatalf("an instance whose sample request failed was routable: %v", got)
		}
		d, err := e.st.GetDeployment(context.Background(), "ep", "blue")
		if err == nil && d.State == store.StateFailed {
			want := "ResourceNotReady: instance blue-0 did not answer the sample request (plumbline.sample_request) with a 2xx: answered 500 Internal Server Error: {\"message\":\"object 'cyl' not found\"}"
			if d.Reason != want {
				t.Errorf("reason = %q\nwant     %q", d.Reason, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment did not fail: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSampleRequestFailureKeepsPreviousVersionServing(t *testing.T) {
	s := &sampler{fail: failing}
	e := start(t, func(c *reconcile.Config) { c.Sample = s })
	v1 := plan("ep", "blue", 1, map[string]string{"V": "1"})
	v1.SampleRequest = []byte(`{"good":true}`)
	e.create(v1)
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	old := e.waitRoutes("blue", 1, time.Second)[0]

	v2 := plan("ep", "blue", 1, map[string]string{"V": "2"})
	v2.SampleRequest = []byte(`{"bad":true}`)
	e.updateKeeping(v1, v2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, in := range e.routes("blue") {
			if in.Name != old.Name || in.Addr != old.Addr {
				t.Fatalf("the new version's instance %v was routable before its sample request passed", in)
			}
		}
		d, _ := e.st.GetDeployment(context.Background(), "ep", "blue")
		if d.State == store.StateFailed {
			if !strings.Contains(d.Reason, "object 'cyl' not found") {
				t.Errorf("reason %q does not say what the sample request answered", d.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update did not fail: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.waitRoutes("blue", 1, 2*time.Second); got[0].Name != old.Name || got[0].Addr != old.Addr {
		t.Errorf("after the failed update the pool is %v, want the previous version's %v", got, old)
	}
}

// updateKeeping updates the deployment to p while its record keeps prev
// as the last version that succeeded, as the API does.
func (e *env) updateKeeping(prev, p *resolve.Plan) {
	e.t.Helper()
	b, err := json.Marshal(resolve.Record{Document: json.RawMessage(`{}`), Plan: p,
		Previous: &resolve.Record{Document: json.RawMessage(`{}`), Plan: prev}})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.UpdateDeployment(context.Background(), p.Endpoint, p.Deployment, func(d *store.Deployment) error {
		d.Spec, d.State = b, store.StateUpdating
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	e.rec.Notify()
}
