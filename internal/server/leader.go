package server

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// Lease timings. A leader renews every leaseRenew and gives up leadership
// when it could not renew for leaseRenewDeadline, before its lease expires
// (leaseTTL), so two replicas never lead at once while clocks agree; the
// fencing token covers the rest. A standby tries every leaseRetry, so it
// takes over within leaseTTL + leaseRetry of the leader's death.
const (
	leaseName          = "reconciler"
	leaseTTL           = 8 * time.Second
	leaseRenew         = 2 * time.Second
	leaseRenewDeadline = 5 * time.Second
	leaseRetry         = time.Second
)

// elector runs lead while this replica holds the reconciler lease. It is
// leader election as client-go's leaderelection does it, on a lease row of
// the shared store.
type elector struct {
	st     store.Store
	holder string
	log    *slog.Logger
	// ttl, renew, renewDeadline and retry are the lease timings; zero
	// takes the lease* constants.
	ttl, renew, renewDeadline, retry time.Duration

	mu    sync.Mutex  // protects lease
	lease store.Lease // the lease held, zero when not leading
}

// fence returns nil while the lease this replica holds is still the
// current one; the reconciler asks before every instance start.
func (e *elector) fence(ctx context.Context) error {
	e.mu.Lock()
	l := e.lease
	e.mu.Unlock()
	if l.Token == 0 {
		return store.ErrFenced
	}
	return e.st.CheckLease(ctx, l)
}

// Start campaigns until ctx ends; while leading it runs lead with a context
// that ends when leadership is lost (or ctx ends).
func (e *elector) Start(ctx context.Context, lead func(context.Context) error) error {
	e.ttl = cmp.Or(e.ttl, leaseTTL)
	e.renew = cmp.Or(e.renew, leaseRenew)
	e.renewDeadline = cmp.Or(e.renewDeadline, leaseRenewDeadline)
	e.retry = cmp.Or(e.retry, leaseRetry)
	logged := ""
	for ctx.Err() == nil {
		l, err := e.st.AcquireLease(ctx, leaseName, e.holder, e.ttl)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, store.ErrLeaseHeld) {
				if logged != l.Holder {
					e.log.Info("standing by: another control replica leads", "leader", l.Holder, "lease_expires", l.ExpiresAt)
					logged = l.Holder
				}
			} else {
				e.log.Warn("leader election", "err", err)
			}
			sleep(ctx, e.retry)
			continue
		}
		logged = ""
		e.mu.Lock()
		e.lease = l
		e.mu.Unlock()
		e.log.Info("leading: this replica reconciles", "token", l.Token)
		e.leadWhileHeld(ctx, l, lead)
		e.mu.Lock()
		e.lease = store.Lease{}
		e.mu.Unlock()
	}
	return nil
}

// leadWhileHeld runs lead and renews the lease until ctx ends or a renewal
// fails past leaseRenewDeadline; then it stops lead, waits for it, and
// releases the lease if it still holds it.
func (e *elector) leadWhileHeld(ctx context.Context, l store.Lease, lead func(context.Context) error) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := lead(lctx); err != nil && lctx.Err() == nil {
			e.log.Error("leader stopped", "err", err)
		}
	}()
	renewed := time.Now()
	t := time.NewTicker(e.renew)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-done:
			break loop
		case <-t.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, e.renewDeadline)
		nl, err := e.st.AcquireLease(rctx, leaseName, e.holder, e.ttl)
		rcancel()
		if err == nil && nl.Token == l.Token {
			renewed = time.Now()
			continue
		}
		if err == nil || errors.Is(err, store.ErrLeaseHeld) || time.Since(renewed) > e.renewDeadline {
			e.log.Warn("lost the leader lease: stopping the reconciler", "err", err)
			break loop
		}
		e.log.Warn("renewing the leader lease", "err", err)
	}
	cancel()
	<-done
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if err := e.st.ReleaseLease(rctx, l); err != nil {
		e.log.Warn("release the leader lease", "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
