package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
)

// Parker is a driver that can keep an instance of the lean R runtime
// alive with no worker (process.Driver): scaled to zero, the instance keeps
// its loaded R session — the model in memory, no CPU — and comes back in a
// fork instead of an R start-up.
type Parker interface {
	// SetWorkers resizes the instance's pool of workers and returns once
	// they are ready; 0 parks it.
	SetWorkers(ctx context.Context, id string, n int) error
}

// parkTimeout bounds one resize of a pool of workers.
const parkTimeout = 30 * time.Second

// parker is the driver as a Parker when plan's instances can be parked:
// the lean R runtime, autoscaled, with a time to keep them loaded.
func (r *Reconciler) parker(plan *resolve.Plan) (Parker, bool) {
	p, ok := r.cfg.Driver.(Parker)
	if !ok || !plan.Lean() || plan.Autoscale == nil || plan.Autoscale.KeepLoaded <= 0 {
		return nil, false
	}
	return p, true
}

// parkAsync takes an instance out of routing at once (its row says
// Parked before OnChange returns), then drains it and stops its workers in
// the background; its loaded session stays. If the driver cannot park it,
// it is stopped.
func (r *Reconciler) parkAsync(ds *depState, in *instance, p Parker) {
	in.mu.Lock()
	if in.stopping || in.parked {
		in.mu.Unlock()
		return
	}
	in.parked, in.ready, in.waking, in.parkedAt = true, false, false, time.Now()
	in.mu.Unlock()
	r.persist(in)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.drain(in)
		ctx, cancel := context.WithTimeout(r.life, parkTimeout)
		defer cancel()
		if err := p.SetWorkers(ctx, in.id, 0); err != nil {
			r.log.Warn("park instance", "instance", in.id, "err", err)
			in.mu.Lock()
			in.parked = false
			in.mu.Unlock()
			r.stopAsync(ds, in, "scaled to zero (its workers could not be stopped alone: "+err.Error()+")")
			return
		}
		r.event(in.endpoint, in.deployment, in.name, "Normal", "Parked",
			fmt.Sprintf("Parked instance %s: scaled to zero; its loaded R session stays for %s with no worker, so the next request forks one instead of starting R",
				in.name, in.plan.Autoscale.KeepLoaded))
		r.enqueue(in.endpoint, in.deployment)
	}()
}

// unparkAsync brings a parked instance back: it is a starting instance to
// the gateways at once, and ready once its workers are forked and its
// readiness probe passes. If the fork fails, it is stopped (and another
// instance starts).
func (r *Reconciler) unparkAsync(ds *depState, in *instance, p Parker, plan *resolve.Plan) {
	in.mu.Lock()
	if !in.parked || in.stopping {
		in.mu.Unlock()
		return
	}
	in.parked, in.waking, in.probeFrom = false, true, time.Now()
	in.mu.Unlock()
	r.persist(in)
	workers := max(1, plan.Workers)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(r.life, parkTimeout)
		defer cancel()
		if err := p.SetWorkers(ctx, in.id, workers); err != nil {
			if errors.Is(err, driver.ErrNotFound) || r.life.Err() != nil {
				return
			}
			r.event(in.endpoint, in.deployment, in.name, "Warning", "UnparkFailed", "forking workers for parked instance "+in.name+" failed: "+err.Error())
			r.stopAsync(ds, in, "its workers could not be forked again")
			return
		}
		r.event(in.endpoint, in.deployment, in.name, "Normal", "Unparked",
			fmt.Sprintf("Unparked instance %s: %d worker(s) forked from its loaded R session in %s", in.name, workers, time.Since(t0).Round(100*time.Microsecond)))
		r.enqueue(in.endpoint, in.deployment)
	}()
}
