package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func poolDep(maxConc int, wait time.Duration, names ...string) *Deployment {
	d := &Deployment{Name: "blue", MaxConcurrentPerInstance: maxConc, MaxQueueWait: wait}
	for _, n := range names {
		d.Instances = append(d.Instances, Instance{Name: n, Addr: n + ":80"})
	}
	return d
}

// result is one acquire's outcome, delivered from a goroutine.
type result struct {
	in  *instance
	err error
}

func acquireAsync(p *pool, ctx context.Context) chan result {
	ch := make(chan result, 1)
	go func() {
		in, err := p.acquire(ctx)
		ch <- result{in, err}
	}()
	return ch
}

func mustAcquire(t *testing.T, p *pool) *instance {
	t.Helper()
	in, err := p.acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return in
}

func TestPoolAdmission(t *testing.T) {
	tests := []struct {
		name      string
		maxConc   int
		instances []string
		wantAdmit int // in flight + queued before the first 429
	}{
		{"one instance, max 1", 1, []string{"a"}, 2},
		{"one instance, max 3", 3, []string{"a"}, 6},
		{"two instances, max 2", 2, []string{"a", "b"}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPool("ep", "blue", nil)
				p.update(poolDep(tt.maxConc, 0, tt.instances...))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var waiting []chan result
				for range tt.wantAdmit {
					waiting = append(waiting, acquireAsync(p, ctx))
					synctest.Wait()
				}
				if _, err := p.acquire(ctx); !errors.Is(err, errQueueFull) {
					t.Fatalf("acquire past the bound: got %v, want errQueueFull", err)
				}
				s := p.stats()
				if got, want := s.InFlight+s.Queued, tt.wantAdmit; got != want || s.Capacity != want {
					t.Errorf("in flight + queued: got %d (capacity %d), want %d", got, s.Capacity, want)
				}
				if s.InFlight != tt.maxConc*len(tt.instances) {
					t.Errorf("in flight: got %d, want %d", s.InFlight, tt.maxConc*len(tt.instances))
				}
				cancel()
				synctest.Wait()
				for _, ch := range waiting {
					select {
					case r := <-ch:
						if r.err == nil {
							p.release(r.in)
						}
					default:
					}
				}
			})
		})
	}
}

// Queued requests get slots in arrival order.
func TestPoolQueueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(2, 0, "a", "b")) // bound 8: 4 in flight, 4 queued
		var held []*instance
		for range 4 {
			held = append(held, mustAcquire(t, p))
		}
		var chans []chan result
		for range 4 {
			chans = append(chans, acquireAsync(p, context.Background()))
			synctest.Wait()
		}
		for i, ch := range chans {
			p.release(held[i])
			synctest.Wait()
			for j, other := range chans[i+1:] {
				select {
				case <-other:
					t.Fatalf("waiter %d served before waiter %d", i+1+j, i)
				default:
				}
			}
			r := <-ch
			held = append(held, r.in)
		}
		for _, in := range held[4:] {
			p.release(in)
		}
		if s := p.stats(); s.InFlight != 0 || s.Queued != 0 {
			t.Errorf("after all releases: got %d in flight, %d queued, want 0 and 0", s.InFlight, s.Queued)
		}
	})
}

func TestPoolLeastLoaded(t *testing.T) {
	p := newPool("ep", "blue", nil)
	p.update(poolDep(4, 0, "a", "b", "c"))
	counts := map[string]int{}
	var held []*instance
	for range 6 {
		in := mustAcquire(t, p)
		counts[in.name]++
		held = append(held, in)
	}
	if diff := cmp.Diff(map[string]int{"a": 2, "b": 2, "c": 2}, counts); diff != "" {
		t.Errorf("spread (-want +got):\n%s", diff)
	}
	// Free both of a's slots: the next two go to a.
	for _, in := range held {
		if in.name == "a" {
			p.release(in)
		}
	}
	for range 2 {
		if in := mustAcquire(t, p); in.name != "a" {
			t.Errorf("least-loaded: got %s, want a", in.name)
		}
	}
}

func TestPoolQueueWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(1, 500*time.Millisecond, "a"))
		held := mustAcquire(t, p)
		start := time.Now()
		_, err := p.acquire(context.Background())
		if !errors.Is(err, errQueueWait) {
			t.Fatalf("got %v, want errQueueWait", err)
		}
		if waited := time.Since(start); waited != 500*time.Millisecond {
			t.Errorf("waited %v, want exactly the max queue wait (fake clock)", waited)
		}
		if s := p.stats(); s.Queued != 0 || s.InFlight != 1 {
			t.Errorf("got %d queued, %d in flight, want 0 and 1", s.Queued, s.InFlight)
		}
		p.release(held)
	})
}

func TestPoolContextWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(1, 0, "a"))
		held := mustAcquire(t, p)
		ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errRequestTimeout)
		defer cancel()
		_, err := p.acquire(ctx)
		if !errors.Is(err, errRequestTimeout) {
			t.Fatalf("got %v, want the context's cause errRequestTimeout", err)
		}
		if s := p.stats(); s.Queued != 0 {
			t.Errorf("got %d queued, want 0", s.Queued)
		}
		p.release(held)
		if s := p.stats(); s.InFlight != 0 {
			t.Errorf("got %d in flight, want 0", s.InFlight)
		}
	})
}

// Removing an instance: its in-flight request completes, the queued one moves
// to the remaining instance, and the removed instance's count survives a
// flap so that it never holds more than its limit.
func TestPoolInstanceRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(1, 0, "a", "b"))
		onA, onB := mustAcquire(t, p), mustAcquire(t, p)
		if onA.name == onB.name {
			t.Fatalf("both on %s", onA.name)
		}
		if onA.name != "a" {
			onA, onB = onB, onA
		}
		queued := acquireAsync(p, context.Background())
		synctest.Wait()

		p.update(poolDep(1, 0, "b", "c")) // a leaves, c arrives
		r := <-queued
		if r.err != nil || r.in.name != "c" {
			t.Fatalf("queued request: got %v on %v, want instance c", r.err, r.in)
		}
		if got := p.inflightOn("a"); got != 1 {
			t.Errorf("a still serves %d, want 1", got)
		}

		p.update(poolDep(1, 0, "a", "b", "c")) // a flaps back while busy
		// 3 in flight on a, b, c; a 4th queues and must not land on a.
		fourth := acquireAsync(p, context.Background())
		synctest.Wait()
		select {
		case r := <-fourth:
			t.Fatalf("got a slot on %s while every instance is full", r.in.name)
		default:
		}
		p.release(onA)
		r4 := <-fourth
		if r4.in.name != "a" {
			t.Errorf("fourth: got %s, want a once its request finished", r4.in.name)
		}
		for _, in := range []*instance{onB, r.in, r4.in} {
			p.release(in)
		}
		if s := p.stats(); s.InFlight != 0 || s.Queued != 0 {
			t.Errorf("after releases: got %d in flight, %d queued", s.InFlight, s.Queued)
		}
	})
}

func TestPoolNoInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		if _, err := p.acquire(context.Background()); !errors.Is(err, errNoInstance) {
			t.Fatalf("empty pool: got %v, want errNoInstance", err)
		}
		p.update(poolDep(1, 0, "a"))
		held := mustAcquire(t, p)
		queued := acquireAsync(p, context.Background())
		synctest.Wait()
		p.update(poolDep(1, 0)) // the last instance leaves
		if r := <-queued; !errors.Is(r.err, errNoInstance) {
			t.Errorf("queued request: got %v, want errNoInstance", r.err)
		}
		p.release(held)
	})
}

// A higher limit lets queued requests through at once.
func TestPoolLimitChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool("ep", "blue", nil)
		p.update(poolDep(1, 0, "a"))
		held := mustAcquire(t, p)
		queued := acquireAsync(p, context.Background())
		synctest.Wait()
		p.update(poolDep(2, 0, "a"))
		r := <-queued
		if r.err != nil {
			t.Fatalf("queued request after raising the limit: %v", r.err)
		}
		p.update(poolDep(1, 0, "a")) // lowering applies to new admissions
		if _, err := p.acquire(context.Background()); !errors.Is(err, errQueueFull) {
			t.Errorf("after lowering: got %v, want errQueueFull (2 in flight, bound 2)", err)
		}
		p.release(held)
		p.release(r.in)
	})
}

func BenchmarkPoolAcquireRelease(b *testing.B) {
	p := newPool("ep", "blue", nil)
	p.update(poolDep(64, 0, "a", "b", "c", "d"))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in, err := p.acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.release(in)
		}
	})
}
