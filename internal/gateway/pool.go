package gateway

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"
)

// pool is one deployment's admission control: a FIFO queue feeding
// per-instance slots. It lives as long as some snapshot names the
// deployment, so in-flight and queued requests survive snapshot swaps.
//
// Admission counts both in-flight and queued requests against
// 2 × maxConc × (ready + starting instances), Azure's "Too many pending
// requests" bound, or maxPending when larger (an autoscaled deployment that
// can still grow). A request is handed to the least-loaded ready instance
// with a free slot, or waits in FIFO order until one frees up, maxQueueWait
// passes, or its context ends. While no instance is ready but one is
// starting (or starts on demand), requests wait for it instead of a 503:
// a cold start within a request's deadline is invisible to the client.
//
// The pool also measures the deployment's demand for the autoscaler:
// requests admitted, and the time integral of requests in flight and
// queued.
type pool struct {
	endpoint   string
	deployment string
	m          *poolMetrics
	// bodies is the deployment's budget of request bodies over 64 KiB read
	// whole before a slot is taken (Config.BodyBufferBytes); limit -1 (the
	// zero pool's) means none.
	bodies budget

	mu sync.Mutex // protects every field below and instance.active/listed
	// maxConc is the deployment's max_concurrent_requests_per_instance
	// (>= 1), for instances that do not set their own.
	maxConc int
	// capacity is the admission bound: 2 × the ready instances' slots.
	capacity int
	// maxQueueWait bounds the wait in the queue; zero means only the
	// request timeout does.
	maxQueueWait time.Duration
	// ready are the instances of the current snapshot, the only ones a
	// request is dispatched to.
	ready []*instance
	// known holds ready instances plus removed ones that still serve
	// requests, by instanceKey, so that an instance that flaps out and back
	// in keeps its in-flight count.
	known map[string]*instance
	// inflight counts dispatched requests, on ready and removed instances.
	inflight int
	// queued counts waiters in the list head…tail.
	queued     int
	head, tail *waiter
	// rr rotates the tie-break between equally loaded instances.
	rr int

	// starting is the snapshot's count of instances started and not
	// ready; onDemand says one starts when a request comes while none
	// runs; maxPending, when larger, is the admission bound.
	starting   int
	onDemand   bool
	maxPending int
	// wake is called (it must not block) when a request starts waiting
	// with no instance ready: the gateway reports its demand at once.
	wake func()

	// Demand. since is when counting began; arrivals counts requests that
	// came (admitted or not); busy integrates inflight + queued over time,
	// in request-seconds, up to busyAt.
	since    time.Time
	arrivals int64
	busy     float64
	busyAt   time.Time
	// coldSince is when a request first waited with no instance ready
	// (zero: not cold); lastCold is the last cold start's length, the
	// estimate Retry-After gives.
	coldSince time.Time
	lastCold  time.Duration
}

// instance is one backend as the pool tracks it.
type instance struct {
	name string
	addr string // as given: host:port or unix:/path
	key  string
	// host and hostHeader are the upstream URL host that reaches addr and
	// the Host header sent to it (see urlHost).
	host, hostHeader string
	// scoringPath and openAPIPath are this instance's routes ("" for the
	// OpenAPI path means the deployment has none): during a rolling update
	// an old instance keeps the routes of the plan it runs. scoringURI and
	// openAPIURI are the same, escaped for the request line.
	scoringPath, openAPIPath string
	scoringURI, openAPIURI   string
	// maxConc is its slot count (>= 1); guarded by pool.mu.
	maxConc int
	// active is the number of requests dispatched to it; guarded by pool.mu.
	active int
	// listed is false once a snapshot removed it; guarded by pool.mu.
	listed bool
	// conns are its idle keep-alive connections; closed when the pool
	// forgets the instance.
	conns *hostPool
	// prov are its provenance headers when it serves another model than
	// its deployment's (nil: the deployment's); set once, part of key.
	prov *provenance
}

func instanceKey(in Instance) string {
	return in.Name + "\x00" + in.Addr + "\x00" + in.ScoringPath + "\x00" + in.OpenAPIPath +
		"\x00" + in.ModelName + "\x00" + in.ModelVersion + "\x00" + in.ModelDigest
}

// waiter is one queued request. ready is signalled exactly once, after inst
// or err was set under pool.mu; done says so for a waiter that gave up.
type waiter struct {
	prev, next *waiter
	ready      chan struct{}
	inst       *instance
	err        error
	done       bool
}

func newPool(endpoint, deployment string, m *poolMetrics) *pool {
	now := time.Now()
	return &pool{
		endpoint:   endpoint,
		deployment: deployment,
		m:          m,
		maxConc:    1,
		known:      make(map[string]*instance),
		wake:       func() {},
		since:      now,
		busyAt:     now,
		bodies:     budget{limit: -1},
	}
}

// tickLocked brings the busy integral up to now; call it before a change
// of inflight or queued.
func (p *pool) tickLocked(now time.Time) {
	if d := now.Sub(p.busyAt); d > 0 {
		p.busy += float64(p.inflight+p.queued) * d.Seconds()
		p.busyAt = now
	}
}

// holdLocked reports whether requests wait while no instance is ready:
// one is starting, or one starts on demand.
func (p *pool) holdLocked() bool {
	return len(p.ready) == 0 && (p.starting > 0 || p.onDemand)
}

// boundLocked is the admission bound on requests in flight and queued.
func (p *pool) boundLocked() int {
	return max(p.capacity+2*p.maxConc*p.starting, p.maxPending)
}

// update applies a snapshot's view of the deployment: limits for new
// admissions, and the set of ready instances. Requests in flight on a removed
// instance complete; queued requests move to the instances that remain, or
// fail with errNoInstance when none does.
func (p *pool) update(d *Deployment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxConc = max(1, d.MaxConcurrentPerInstance)
	p.maxQueueWait = max(0, d.MaxQueueWait)
	p.starting = max(0, d.Starting)
	p.onDemand = d.OnDemand
	p.maxPending = max(0, d.MaxPending)

	for _, in := range p.ready {
		in.listed = false
	}
	ready := make([]*instance, 0, len(d.Instances))
	p.capacity = 0
	for _, spec := range d.Instances {
		key := instanceKey(spec)
		in := p.known[key]
		if in == nil {
			host, hostHeader := urlHost(spec.Addr)
			scoring := cmp.Or(spec.ScoringPath, d.ScoringPath, "/score")
			openAPI := cmp.Or(spec.OpenAPIPath, d.OpenAPIPath)
			in = &instance{
				name: spec.Name, addr: spec.Addr, key: key, host: host, hostHeader: hostHeader,
				scoringPath: scoring, openAPIPath: openAPI,
				scoringURI: escapedPath(scoring), openAPIURI: escapedPath(openAPI),
				conns: newHostPool(spec.Addr),
				prov:  instanceProvenance(spec),
			}
			p.known[key] = in
		} else if in.listed {
			continue // listed twice in one snapshot
		}
		in.maxConc = p.maxConc
		if spec.MaxConcurrent > 0 {
			in.maxConc = spec.MaxConcurrent
		}
		p.capacity += 2 * in.maxConc
		in.listed = true
		ready = append(ready, in)
	}
	for _, in := range p.ready {
		if !in.listed && in.active == 0 {
			p.forgetLocked(in)
		}
	}
	p.ready = ready
	now := time.Now()
	p.tickLocked(now)
	switch {
	case len(ready) > 0:
		if !p.coldSince.IsZero() {
			p.lastCold = now.Sub(p.coldSince)
			p.coldSince = time.Time{}
			if p.m != nil {
				p.m.coldStart.Observe(p.lastCold.Seconds())
			}
		}
		p.dispatchLocked()
	case !p.holdLocked():
		// Nothing is starting and nothing will: queued requests fail.
		p.coldSince = time.Time{}
		p.failQueuedLocked(errNoInstance)
	}
	p.gaugesLocked()
}

// retire empties a pool whose deployment left the routing table: queued
// requests fail with errNoInstance, in-flight ones complete.
func (p *pool) retire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range p.ready {
		in.listed = false
		if in.active == 0 {
			p.forgetLocked(in)
		}
	}
	p.ready = nil
	p.capacity = 0
	p.starting, p.onDemand, p.maxPending = 0, false, 0
	p.coldSince = time.Time{}
	p.tickLocked(time.Now())
	p.failQueuedLocked(errNoInstance)
	p.gaugesLocked()
}

// forgetLocked drops a removed instance that has nothing in flight, and
// closes its idle connections.
func (p *pool) forgetLocked(in *instance) {
	delete(p.known, in.key)
	in.conns.close()
}

// tryAcquire admits a request that can go to an instance at once, without
// a context or a timer: the common case. It returns the instance, or an
// admission error (errNoInstance, errQueueFull), or neither when the
// request has to queue: then the caller calls acquire, which checks again.
func (p *pool) tryAcquire(now time.Time) (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 && !p.holdLocked() {
		p.arrivals++
		return nil, errNoInstance
	}
	if p.inflight+p.queued >= p.boundLocked() {
		p.arrivals++
		return nil, errQueueFull
	}
	if p.head != nil {
		return nil, nil
	}
	in := p.pickLocked()
	if in == nil {
		return nil, nil
	}
	p.arrivals++
	p.tickLocked(now)
	in.active++
	p.inflight++
	p.gaugesLocked()
	return in, nil
}

// acquire admits a request and returns the instance it may use; the caller
// must release it. It fails at once with errNoInstance or errQueueFull, or
// after waiting with errQueueWait or context.Cause(ctx).
func (p *pool) acquire(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	p.arrivals++
	if len(p.ready) == 0 && !p.holdLocked() {
		p.mu.Unlock()
		return nil, errNoInstance
	}
	if p.inflight+p.queued >= p.boundLocked() {
		p.mu.Unlock()
		return nil, errQueueFull
	}
	now := time.Now()
	p.tickLocked(now)
	if p.head == nil {
		if in := p.pickLocked(); in != nil {
			in.active++
			p.inflight++
			p.gaugesLocked()
			p.mu.Unlock()
			return in, nil
		}
	}
	// Queued requests are the slow path; a waiter is not worth pooling.
	w := &waiter{ready: make(chan struct{}, 1)}
	p.pushLocked(w)
	wait := p.maxQueueWait
	cold := len(p.ready) == 0
	if cold {
		// max_queue_wait_ms bounds the wait for a busy instance, not for
		// one that is starting: only the request's deadline does.
		wait = 0
		if p.coldSince.IsZero() {
			p.coldSince = now
		}
	}
	p.gaugesLocked()
	p.mu.Unlock()
	if cold {
		p.wake()
	}

	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	var cause error
	select {
	case <-w.ready:
		if w.err == nil {
			p.waited(now)
		}
		return w.inst, w.err
	case <-ctx.Done():
		cause = context.Cause(ctx)
	case <-expired:
		cause = errQueueWait
	}

	p.mu.Lock()
	if !w.done {
		p.tickLocked(time.Now())
		p.unlinkLocked(w)
		if len(p.ready) == 0 && errors.Is(cause, errRequestTimeout) {
			// The deadline passed while the deployment was still cold:
			// not the model's time (408) but capacity that did not come
			// in time (503), with when to try again.
			cause = &coldStartError{retryAfter: p.retryAfterLocked(time.Now())}
		}
		p.gaugesLocked()
		p.mu.Unlock()
		return nil, cause
	}
	p.mu.Unlock()
	// Handed an instance (or an error) while giving up: the hand-off won.
	<-w.ready
	in, err := w.inst, w.err
	if err == nil && ctx.Err() != nil {
		p.release(in)
		return nil, cause
	}
	return in, err
}

// waited records how long a request queued before it got a slot.
func (p *pool) waited(since time.Time) {
	if p.m != nil {
		p.m.capacityWait.Observe(time.Since(since).Seconds())
	}
}

// retryAfterLocked is when a request that gave up waiting for a cold start
// should try again: what the last cold start took, less what this one has
// taken so far; at least a second.
func (p *pool) retryAfterLocked(now time.Time) time.Duration {
	left := time.Second
	if p.lastCold > 0 && !p.coldSince.IsZero() {
		left = max(left, p.lastCold-now.Sub(p.coldSince))
	}
	return min(left, time.Minute)
}

// release returns in's slot and hands it to the head of the queue.
func (p *pool) release(in *instance) {
	p.mu.Lock()
	p.tickLocked(time.Now())
	in.active--
	p.inflight--
	if !in.listed && in.active == 0 {
		p.forgetLocked(in)
	}
	p.dispatchLocked()
	p.gaugesLocked()
	p.mu.Unlock()
}

// pickLocked returns the least-loaded ready instance with a free slot, or nil.
// Ties rotate so that sequential traffic spreads over the instances.
func (p *pool) pickLocked() *instance {
	n := len(p.ready)
	if n == 0 {
		return nil
	}
	start := p.rr % n
	p.rr++
	var best *instance
	for i := range n {
		in := p.ready[(start+i)%n]
		if in.active < in.maxConc && (best == nil || in.active < best.active) {
			best = in
		}
	}
	return best
}

// dispatchLocked hands free slots to queued requests in FIFO order.
func (p *pool) dispatchLocked() {
	for p.head != nil {
		in := p.pickLocked()
		if in == nil {
			return
		}
		w := p.head
		p.unlinkLocked(w)
		in.active++
		p.inflight++
		w.inst, w.done = in, true
		w.ready <- struct{}{}
	}
}

func (p *pool) failQueuedLocked(err error) {
	for p.head != nil {
		w := p.head
		p.unlinkLocked(w)
		w.err, w.done = err, true
		w.ready <- struct{}{}
	}
}

func (p *pool) pushLocked(w *waiter) {
	w.prev = p.tail
	if p.tail != nil {
		p.tail.next = w
	} else {
		p.head = w
	}
	p.tail = w
	p.queued++
}

func (p *pool) unlinkLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		p.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		p.tail = w.prev
	}
	w.prev, w.next = nil, nil
	p.queued--
}

func (p *pool) gaugesLocked() {
	if p.m == nil {
		return
	}
	p.m.queue.Set(float64(p.queued))
	p.m.inflight.Set(float64(p.inflight))
	p.m.ready.Set(float64(len(p.ready)))
}

// Demand is one deployment's load as this gateway saw it, the
// autoscaler's input (the server copies it into the store's report).
// Arrivals and Busy are cumulative since Since.
type Demand struct {
	// InFlight requests are at an instance; Queued ones wait for a slot
	// or for an instance to start.
	InFlight, Queued int
	// Ready is how many instances requests are dispatched to.
	Ready int
	// Arrivals counts the requests that came, admitted or refused.
	Arrivals int64
	// Busy is the time integral of InFlight + Queued, in request-seconds.
	Busy float64
	// Since is when counting began; At when these counters were read.
	Since, At time.Time
}

func (p *pool) demand(now time.Time) Demand {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tickLocked(now)
	return Demand{InFlight: p.inflight, Queued: p.queued, Ready: len(p.ready),
		Arrivals: p.arrivals, Busy: p.busy, Since: p.since, At: now}
}

// idle reports whether no request is queued or in flight.
func (p *pool) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight == 0 && p.queued == 0
}

// inflightOn counts the requests in flight on instances named name, listed
// or removed.
func (p *pool) inflightOn(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, in := range p.known {
		if in.name == name {
			n += in.active
		}
	}
	return n
}

// DeploymentStats is a point-in-time view of one deployment's pool.
type DeploymentStats struct {
	Endpoint   string
	Deployment string
	// Queued requests wait for a slot; InFlight ones are at an instance.
	Queued   int
	InFlight int
	// Ready is the number of ready instances requests are dispatched to.
	Ready int
	// Capacity is the admission bound, 2 × the ready instances' max
	// concurrent requests.
	Capacity  int
	Instances []InstanceStats
}

// InstanceStats is one ready instance's load.
type InstanceStats struct {
	Name     string
	Addr     string
	InFlight int
}

func (p *pool) stats() DeploymentStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := DeploymentStats{
		Endpoint:   p.endpoint,
		Deployment: p.deployment,
		Queued:     p.queued,
		InFlight:   p.inflight,
		Ready:      len(p.ready),
		Capacity:   p.capacity,
		Instances:  make([]InstanceStats, 0, len(p.ready)),
	}
	for _, in := range p.ready {
		s.Instances = append(s.Instances, InstanceStats{Name: in.name, Addr: in.addr, InFlight: in.active})
	}
	return s
}
