package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// slowImages is a Preparer whose image for a deployment is ready only when
// the test says so (a build in progress), or fails.
type slowImages struct {
	mu    sync.Mutex
	ready map[string]bool
	err   map[string]error
	calls map[string]int
}

func (s *slowImages) Prepare(ctx context.Context, p *resolve.Plan) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[p.Deployment]++
	if err := s.err[p.Deployment]; err != nil {
		return false, err
	}
	return s.ready[p.Deployment], nil
}

func (s *slowImages) set(name string, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready[name] = ready
}

// TestPreparerDoesNotHoldOthers: a deployment whose image is still being
// built starts nothing and does not hold up another deployment; once the
// image is ready it starts and succeeds, with the startup deadline counted
// from then; a failed build fails its deployment with the builder's reason.
func TestPreparerDoesNotHoldOthers(t *testing.T) {
	imgs := &slowImages{ready: map[string]bool{"green": true}, err: map[string]error{}, calls: map[string]int{}}
	e := start(t, func(c *reconcile.Config) { c.Images = imgs })
	e.create(plan("ep", "blue", 1, nil))
	e.create(plan("ep", "green", 1, nil))
	e.waitState("green", store.StateSucceeded, 5*time.Second)

	// blue waits for its image longer than its startup deadline (2 s).
	time.Sleep(2500 * time.Millisecond)
	if d, _ := e.st.GetDeployment(context.Background(), "ep", "blue"); d.State != store.StateCreating {
		t.Fatalf("blue while its image builds: state %s (%s), want Creating", d.State, d.Reason)
	}
	if got := e.rec.Instances("ep", "blue"); len(got) != 0 {
		t.Errorf("blue started %d instances before its image was ready", len(got))
	}
	imgs.set("blue", true)
	e.rec.Notify()
	e.waitState("blue", store.StateSucceeded, 5*time.Second)

	imgs.mu.Lock()
	imgs.err["red"] = errors.New("ImageBuildFailure: image build failed at STEP 2/3: RUN false: exit status 1")
	imgs.mu.Unlock()
	e.create(plan("ep", "red", 1, nil))
	d := e.waitState("red", store.StateFailed, 5*time.Second)
	if !strings.HasPrefix(d.Reason, "ImageBuildFailure: image build failed at STEP 2/3") {
		t.Errorf("red's reason = %q, want the builder's", d.Reason)
	}
}
