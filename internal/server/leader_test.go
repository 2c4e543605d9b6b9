package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

// TestElectorOneLeaderAndTakeover: two replicas campaign on one store;
// exactly one leads; when it steps down the other takes over with a higher
// fencing token, and the old lease's fence fails.
func TestElectorOneLeaderAndTakeover(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const ttl = 600 * time.Millisecond
	mk := func(id string) *elector {
		return &elector{st: st, holder: id, log: quiet, ttl: ttl, renew: 100 * time.Millisecond, renewDeadline: 400 * time.Millisecond, retry: 50 * time.Millisecond}
	}
	a, b := mk("a"), mk("b")
	var leading atomic.Int32
	var maxLeading atomic.Int32
	leadUntil := func(e *elector, dead <-chan struct{}) func(context.Context) error {
		return func(ctx context.Context) error {
			n := leading.Add(1)
			if m := maxLeading.Load(); n > m {
				maxLeading.CompareAndSwap(m, n)
			}
			defer leading.Add(-1)
			select {
			case <-ctx.Done():
			case <-dead:
			}
			return nil
		}
	}
	aDead, bDead := make(chan struct{}), make(chan struct{})
	actx, acancel := context.WithCancel(t.Context())
	defer acancel()
	go a.Start(actx, leadUntil(a, aDead))
	waitFor(t, 2*time.Second, "a to lead", func() bool { return a.fence(t.Context()) == nil })
	bctx, bcancel := context.WithCancel(t.Context())
	defer bcancel()
	go b.Start(bctx, leadUntil(b, bDead))
	time.Sleep(3 * ttl)
	if err := b.fence(t.Context()); err == nil {
		t.Fatal("b leads while a still renews its lease")
	}
	a.mu.Lock()
	aLease := a.lease
	a.mu.Unlock()

	// a steps down (its context ends: it releases the lease);
	// TestElectorTakeoverAfterCrash covers a leader that never releases.
	close(aDead)
	acancel()
	begin := time.Now()
	waitFor(t, ttl+2*time.Second, "b to take over", func() bool { return b.fence(t.Context()) == nil })
	t.Logf("b took over %s after a stopped", time.Since(begin))
	b.mu.Lock()
	bLease := b.lease
	b.mu.Unlock()
	if bLease.Token <= aLease.Token {
		t.Errorf("b's token %d, want above a's %d", bLease.Token, aLease.Token)
	}
	if err := st.CheckLease(t.Context(), aLease); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a's old lease: CheckLease = %v, want ErrFenced", err)
	}
	if m := maxLeading.Load(); m != 1 {
		t.Errorf("%d replicas led at once, want 1", m)
	}
	close(bDead)
}

// TestElectorTakeoverAfterCrash: a leader that vanishes without releasing
// (kill -9) is replaced once its lease expires.
func TestElectorTakeoverAfterCrash(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const ttl = 500 * time.Millisecond
	dead, err := st.AcquireLease(t.Context(), leaseName, "crashed", ttl)
	if err != nil {
		t.Fatal(err)
	}
	b := &elector{st: st, holder: "b", log: slog.New(slog.NewTextHandler(io.Discard, nil)), ttl: ttl, renew: 100 * time.Millisecond, renewDeadline: 300 * time.Millisecond, retry: 50 * time.Millisecond}
	led := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Start(ctx, func(ctx context.Context) error { led <- struct{}{}; <-ctx.Done(); return nil })
	}()
	defer func() { cancel(); <-done }()
	begin := time.Now()
	select {
	case <-led:
	case <-time.After(ttl + 3*time.Second):
		t.Fatal("b never led after the crashed leader's lease expired")
	}
	if took := time.Since(begin); took < ttl/2 {
		t.Errorf("b led after %s, before the crashed leader's lease (%s) could have expired", took, ttl)
	}
	if err := st.CheckLease(t.Context(), dead); !errors.Is(err, store.ErrFenced) {
		t.Errorf("crashed leader's lease: CheckLease = %v, want ErrFenced", err)
	}
}
