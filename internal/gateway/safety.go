package gateway

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/compare"
	"github.com/plumbline/plumbline/internal/figures"
)

// Safe rollout on the data plane. The gateway measures, per endpoint and
// traffic epoch (the endpoint's generation, which changes with its
// traffic), what a rollout is judged on: each deployment's requests,
// errors, contract violations and latency while a rollout step runs, and
// the comparison of mirrored answers with the live ones. It keeps its own
// figures; the server writes them to the shared store (TakeFigures), where
// the rollout controller and the API add up every gateway's.
//
// While a live step runs, the candidate is held to its sample: on this
// gateway it gets at most MinRequests requests until they are answered and
// judged against the step's gates, its share going to the rollout's
// starting split meanwhile. A breach seen here sends its share there for
// the rest of the step, and is written to the store at once; the
// controller then rolls back. So a candidate that fails from the start of a
// step fails no request beyond its sample.

// Kinds of figures (Measured.Kind).
const (
	// KindDeployment are one deployment's figures during a rollout step.
	KindDeployment = "deployment"
	// KindMirror compares a live deployment with its mirror target.
	KindMirror = "mirror"
	// KindReplay compares captured answers with a deployment's answers to
	// the same requests (Gateway.Replay).
	KindReplay = "replay"
)

// PairSubject names a comparison: "live>shadow".
func PairSubject(live, shadow string) string { return live + ">" + shadow }

// Measured is one set of figures this gateway measured: cumulative for its
// endpoint, epoch, kind and subject since the gateway started.
type Measured struct {
	Endpoint string
	Epoch    int64
	Kind     string
	// Subject is the deployment (KindDeployment) or PairSubject.
	Subject    string
	Deployment *figures.Deployment // KindDeployment
	Pair       *figures.Pair       // KindMirror, KindReplay
}

// book holds the gateway's figures.
type book struct {
	mu   sync.Mutex // protects sets and diffs
	sets map[bookKey]*figSet
	// diffs are sampled disagreeing pairs waiting for TakeDiffs.
	diffs []DiffSample
	// flush is signalled when figures should reach the store at once (a
	// gate breached here).
	flush chan struct{}
}

type bookKey struct {
	endpoint string
	epoch    int64
}

// maxPendingDiffs bounds the diff samples kept between two TakeDiffs.
const maxPendingDiffs = 64

// setIdle is how long a set nobody touched stays after its last flush.
const setIdle = 10 * time.Minute

func newBook() *book {
	return &book{sets: map[bookKey]*figSet{}, flush: make(chan struct{}, 1)}
}

// set returns the figures of one endpoint and epoch, created on first use.
func (b *book) set(endpoint string, epoch int64) *figSet {
	k := bookKey{endpoint, epoch}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sets[k]
	if s == nil {
		s = &figSet{endpoint: endpoint, epoch: epoch, deps: map[string]*figures.Deployment{}, pairs: map[pairKey]*figures.Pair{}, touched: time.Now()}
		b.sets[k] = s
	}
	return s
}

func (b *book) flushSoon() {
	select {
	case b.flush <- struct{}{}:
	default:
	}
}

// figSet are the figures of one endpoint in one epoch.
type figSet struct {
	endpoint string
	epoch    int64

	mu        sync.Mutex // protects every field below
	deps      map[string]*figures.Deployment
	pairs     map[pairKey]*figures.Pair
	dirty     bool
	touched   time.Time
	guard     *guard                // the step's hold, when a live step runs
	lastDiffs map[pairKey]time.Time // when a diff of each pair was last sampled
}

type pairKey struct{ kind, subject string }

// dep returns d's figures; s.mu held.
func (s *figSet) dep(name string) *figures.Deployment {
	f := s.deps[name]
	if f == nil {
		f = &figures.Deployment{}
		s.deps[name] = f
	}
	return f
}

// pair returns a comparison's figures; s.mu held.
func (s *figSet) pair(k pairKey) *figures.Pair {
	f := s.pairs[k]
	if f == nil {
		f = &figures.Pair{}
		s.pairs[k] = f
	}
	return f
}

// guard holds a rollout candidate to its sample on this gateway.
type guard struct {
	cand   string
	min    int64
	gates  figures.Gates
	trip   func(endpoint, deployment string)
	mu     sync.Mutex // protects the fields below
	sent   int64      // split-picked requests admitted to the candidate
	passed bool       // the sample was judged and passed
	breach string     // the sample breached a gate: why
}

// admit reports whether a request the split gave the candidate may go to
// it: while its sample is incomplete, or once the sample passed.
func (g *guard) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.breach != "":
		return false
	case g.passed:
		return true
	case g.sent < g.min:
		g.sent++
		return true
	}
	return false
}

// judge runs after every answered request of a live step, s.mu held: once
// the candidate answered its sample, the gates decide.
func (g *guard) judge(s *figSet) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.passed || g.breach != "" {
		return
	}
	cand := s.deps[g.cand]
	if cand == nil || cand.Requests < g.min {
		return
	}
	var base figures.Deployment
	for name, f := range s.deps {
		if name != g.cand {
			base.Merge(f)
		}
	}
	if why := g.gates.Live(cand, &base, 0, g.min); why != "" {
		g.breach = why
		cand.Tripped = why
		s.dirty = true
		if g.trip != nil {
			g.trip(s.endpoint, g.cand)
		}
		return
	}
	g.passed = true
}

// attachSafety sets a compiled route's safe-rollout parts from its
// endpoint: the epoch, the comparer, and a running live step's figures and
// hold. Called by Update with g.mu held.
func (g *Gateway) attachSafety(rt *route, ep *Endpoint) {
	rt.epoch = ep.Generation
	if rt.mirror != nil {
		rt.comparer = comparerFor(ep.Compare)
	}
	for key, d := range ep.Deployments {
		if d == nil || d.Capture == nil {
			continue
		}
		dname := strings.ToLower(d.Name)
		if dname == "" {
			dname = strings.ToLower(key)
		}
		if t := rt.targets[dname]; t != nil {
			t.capture = g.captureConfFor(d.Capture)
		}
	}
	ro := ep.Rollout
	if ro == nil || ro.Shadow {
		return
	}
	cand := strings.ToLower(ro.Candidate)
	if rt.targets[cand] == nil {
		return
	}
	s := g.book.set(rt.name, rt.epoch)
	rt.figs = s
	if ro.MinRequests <= 0 {
		return
	}
	names := make([]string, 0, len(ro.Fallback))
	for n, pct := range ro.Fallback {
		n = strings.ToLower(n)
		if pct > 0 && n != cand && rt.targets[n] != nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		rt.ftotal += trafficOf(ro.Fallback, n)
		rt.fallback = append(rt.fallback, weighted{upTo: rt.ftotal, t: rt.targets[n]})
	}
	if len(rt.fallback) == 0 {
		return // nowhere to send the candidate's share: no hold
	}
	s.mu.Lock()
	if s.guard == nil || s.guard.cand != cand {
		s.guard = &guard{cand: cand, trip: g.tripped}
	}
	gd := s.guard
	s.mu.Unlock()
	gd.mu.Lock()
	gd.min = int64(ro.MinRequests)
	gd.gates = figures.Gates{MaxErrorRate: ro.MaxErrorRate, MaxLatencyRatio: ro.MaxLatencyRatio, MaxContractViolationRate: ro.MaxContractViolationRate}
	gd.mu.Unlock()
	rt.guard = gd
}

// pickFallback chooses among the rollout's starting split.
func (rt *route) pickFallback() *target {
	if len(rt.fallback) == 1 {
		return rt.fallback[0].t
	}
	n := rand.IntN(rt.ftotal)
	for _, w := range rt.fallback {
		if n < w.upTo {
			return w.t
		}
	}
	return rt.fallback[len(rt.fallback)-1].t
}

// tripped is a guard's breach: the figures go to the store at once.
func (g *Gateway) tripped(endpoint, deployment string) {
	g.smetrics.trips.WithLabelValues(endpoint, deployment).Inc()
	if g.log != nil {
		g.log.Warn("rollout gate breached on this gateway: the candidate's share goes back to the starting split", "endpoint", endpoint, "deployment", deployment)
	}
	g.book.flushSoon()
}

// observe records an answered scoring request of a live rollout step.
func (s *figSet) observe(deployment string, status int, seconds float64, gd *guard) {
	s.mu.Lock()
	s.dep(deployment).Observe(status, seconds)
	s.dirty = true
	s.touched = time.Now()
	if gd != nil && deployment == gd.cand {
		gd.judge(s)
	}
	s.mu.Unlock()
}

// comparers caches compiled comparison settings by value.
var comparers struct {
	sync.Mutex
	m map[Compare]*compare.Comparer
}

func comparerFor(c *Compare) *compare.Comparer {
	cfg := Compare{Tolerance: compare.DefaultTolerance}
	if c != nil {
		cfg = *c
	}
	comparers.Lock()
	defer comparers.Unlock()
	if cp := comparers.m[cfg]; cp != nil {
		return cp
	}
	cp, err := compare.New(compare.Config{Path: cfg.Path, Tolerance: cfg.Tolerance, RelativeTolerance: cfg.RelativeTolerance})
	if err != nil {
		// The control plane validated the path; a path this gateway cannot
		// compile compares whole answers rather than nothing.
		cp, _ = compare.New(compare.Config{Tolerance: cfg.Tolerance, RelativeTolerance: cfg.RelativeTolerance})
	}
	if comparers.m == nil || len(comparers.m) > 256 {
		comparers.m = map[Compare]*compare.Comparer{}
	}
	comparers.m[cfg] = cp
	return cp
}

// TakeFigures returns every set of figures that changed since the last
// call, cumulative, for the store. Sets nobody touched for a while are
// forgotten once written.
func (g *Gateway) TakeFigures() []Measured {
	tbl := g.table.Load()
	g.book.mu.Lock()
	sets := make([]*figSet, 0, len(g.book.sets))
	for k, s := range g.book.sets {
		s.mu.Lock()
		idle := !s.dirty && time.Since(s.touched) > setIdle
		s.mu.Unlock()
		if rt := tbl.endpoints[k.endpoint]; rt != nil && rt.epoch == k.epoch {
			idle = false // routes may still record into it
		}
		if idle {
			delete(g.book.sets, k)
			continue
		}
		sets = append(sets, s)
	}
	g.book.mu.Unlock()
	var out []Measured
	for _, s := range sets {
		s.mu.Lock()
		if s.dirty {
			for _, name := range slices.Sorted(maps.Keys(s.deps)) {
				f := s.deps[name].Clone()
				out = append(out, Measured{Endpoint: s.endpoint, Epoch: s.epoch, Kind: KindDeployment, Subject: name, Deployment: &f})
			}
			for k, p := range s.pairs {
				f := p.Clone()
				out = append(out, Measured{Endpoint: s.endpoint, Epoch: s.epoch, Kind: k.kind, Subject: k.subject, Pair: &f})
			}
			s.dirty = false
		}
		s.mu.Unlock()
	}
	return out
}

// FlushNow is signalled when figures should be written without waiting
// for the next interval (a gate breached on this gateway).
func (g *Gateway) FlushNow() <-chan struct{} { return g.book.flush }

// finishSafety records a finished request for the safe-rollout parts
// (finish, on the request goroutine; only requests that have one).
func (g *Gateway) finishSafety(st *reqState, status int, elapsed time.Duration) {
	if st.figs != nil {
		st.figs.observe(st.t.name, status, elapsed.Seconds(), st.rt.guard)
	}
	if st.pair != nil {
		st.pairLiveDone(status, elapsed.Seconds())
	}
	if st.capture != nil {
		g.captureRecord(st, status, elapsed)
	}
}

// Remeasure marks figures taken by TakeFigures as not written yet (the
// store refused them): the next TakeFigures returns them again.
func (g *Gateway) Remeasure(ms []Measured) {
	for _, m := range ms {
		s := g.book.set(m.Endpoint, m.Epoch)
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
	}
}
