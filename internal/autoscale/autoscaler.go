package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// Defaults for the zero values of Config.
const (
	// DefaultTick is how often gateway reports are read: as often as
	// gateways write them.
	DefaultTick = 250 * time.Millisecond
	// DefaultReportFresh is how recent a gateway's report must be to
	// count: a gateway that stopped reporting (killed) stops counting.
	DefaultReportFresh = 3 * time.Second
)

// Config wires an Autoscaler. Zero values take the documented defaults.
type Config struct {
	Store store.Store
	// Scaled is called, without locks held, after a deployment's desired
	// count changed: the reconciler starts or stops instances. Nil means
	// no-op.
	Scaled func(endpoint, deployment string)
	// Metrics receives the autoscaler's gauges and counters; nil means
	// none are kept.
	Metrics *Metrics
	Logger  *slog.Logger
	// Tick is how often demand is read (default DefaultTick); each
	// deployment decides every polling_interval, and at once when a
	// request waits at zero instances.
	Tick time.Duration
	// ReportFresh is how recent a report must be (default
	// DefaultReportFresh).
	ReportFresh time.Duration
}

// Autoscaler decides the instance count of every autoscaled deployment.
// Create it with New, run it with Start on the leader; the reconciler asks
// Desired.
type Autoscaler struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	passMu sync.Mutex // serialises passes

	mu   sync.Mutex // protects deps
	deps map[string]*depScale
}

// depScale is one autoscaled deployment as the autoscaler tracks it;
// guarded by passMu except desired, which mu guards too.
type depScale struct {
	endpoint, name string
	generation     int64
	dec            *decider
	lastDecide     time.Time
	lastObserve    time.Time
	// seen are the last counters of each gateway, by report ID.
	seen map[string]seenDemand
	// desired is the current decision (mu).
	desired int
	panic   bool
}

// New returns an Autoscaler; call Start to run it.
func New(cfg Config) *Autoscaler {
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.ReportFresh <= 0 {
		cfg.ReportFresh = DefaultReportFresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Scaled == nil {
		cfg.Scaled = func(string, string) {}
	}
	return &Autoscaler{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), deps: map[string]*depScale{}}
}

func key(endpoint, deployment string) string { return strings.ToLower(endpoint + "/" + deployment) }

// Desired is the instance count the autoscaler wants for a deployment;
// false when it does not scale that deployment (yet): then the plan's
// count holds.
func (a *Autoscaler) Desired(endpoint, deployment string) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ds := a.deps[key(endpoint, deployment)]
	if ds == nil {
		return 0, false
	}
	return ds.desired, true
}

// Kick asks for a pass now (a gateway reported a request waiting at zero
// instances). It never blocks.
func (a *Autoscaler) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Prime runs one pass, so that Desired knows every autoscaled deployment's
// last decision (kept in the store) before the reconciler starts: a new
// leader neither scales in what the last one scaled out nor starts what it
// scaled to zero.
func (a *Autoscaler) Prime(ctx context.Context) error { return a.pass(ctx) }

// Start decides until ctx ends: every Tick, and at once on Kick.
func (a *Autoscaler) Start(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Tick)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.kick:
		}
		err := a.pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			a.log.Warn("autoscaler: read demand", "err", err)
			failing = true
		case err == nil && failing:
			a.log.Info("autoscaler: reading demand again")
			failing = false
		}
	}
}

// view is what one pass knows of a deployment.
type view struct {
	d        store.Deployment
	plan     *resolve.Plan
	ready    int
	actual   int
	scale    store.Scale
	hasScale bool
}

// pass reads the deployments, their instances, the gateways' demand and
// the stored decisions, and decides for every autoscaled deployment that
// is due.
func (a *Autoscaler) pass(ctx context.Context) error {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	st := a.cfg.Store
	deps, err := st.ListDeployments(ctx, "")
	if err != nil {
		return err
	}
	rows, err := st.ListInstances(ctx, "", "")
	if err != nil {
		return err
	}
	now := time.Now()
	reports, err := st.ListGatewayReports(ctx, now.Add(-a.cfg.ReportFresh))
	if err != nil {
		return err
	}
	scales, err := st.ListScales(ctx)
	if err != nil {
		return err
	}
	views := map[string]*view{}
	for _, d := range deps {
		p := servingPlan(d)
		if p == nil || p.Autoscale == nil {
			continue
		}
		views[key(d.Endpoint, d.Name)] = &view{d: d, plan: p}
	}
	for _, r := range rows {
		v := views[key(r.Endpoint, r.Deployment)]
		if v == nil || r.State == store.InstanceStopping || r.State == store.InstanceExited || r.State == store.InstanceParked {
			continue
		}
		v.actual++
		if r.Routable {
			v.ready++
		}
	}
	for _, sc := range scales {
		if v := views[key(sc.Endpoint, sc.Deployment)]; v != nil {
			v.scale, v.hasScale = sc, true
		}
	}

	var changed []*depScale
	for k, v := range views {
		ds := a.track(k, v, now)
		conc, arrivals, pending := ds.demand(k, reports)
		busy := 0.0
		if !ds.lastObserve.IsZero() {
			busy = conc * now.Sub(ds.lastObserve).Seconds()
		}
		ds.lastObserve = now
		ds.dec.observe(now, busy, arrivals, pending)
		cold := ds.desired == 0 && pending > 0
		if !cold && now.Sub(ds.lastDecide) < v.plan.Autoscale.PollingInterval && ds.generation == v.d.Generation {
			a.cfg.Metrics.observe(v, ds, nil)
			continue
		}
		ds.generation = v.d.Generation
		ds.lastDecide = now
		floor := 0
		if v.hasScale && now.Before(v.scale.PrewarmUntil) {
			floor = v.scale.PrewarmInstances
		}
		dec := ds.dec.decide(now, v.ready, floor)
		a.cfg.Metrics.observe(v, ds, &dec)
		if dec.changed || dec.panicking != ds.panic || !v.hasScale {
			if err := a.record(ctx, v, dec); err != nil {
				a.log.Error("autoscaler: record decision", "endpoint", v.d.Endpoint, "deployment", v.d.Name, "err", err)
			}
		}
		ds.panic = dec.panicking
		if dec.changed {
			// The event first: whoever sees the new count finds why.
			a.event(v.d, dec.why)
			a.cfg.Metrics.decided(v, dec)
			a.mu.Lock()
			ds.desired = dec.desired
			a.mu.Unlock()
			changed = append(changed, ds)
		}
	}

	a.mu.Lock()
	for k, ds := range a.deps {
		if views[k] == nil {
			delete(a.deps, k)
			a.cfg.Metrics.forget(ds.endpoint, ds.name)
		}
	}
	a.mu.Unlock()
	for _, ds := range changed {
		a.cfg.Scaled(ds.endpoint, ds.name)
	}
	return nil
}

// servingPlan is the plan whose instances run: the last good one while
// an update failed.
func servingPlan(d store.Deployment) *resolve.Plan {
	if d.State == store.StateDeleting {
		return nil
	}
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		return nil
	}
	if d.State == store.StateFailed && d.ObservedGeneration == d.Generation {
		if rec.Previous == nil || rec.Previous.Plan == nil {
			return nil // nothing runs
		}
		return rec.Previous.Plan
	}
	return rec.Plan
}

// settings are a plan's autoscaling settings for the decider.
func settings(p *resolve.Plan) Settings {
	as := p.Autoscale
	return Settings{
		Min: as.MinInstances, Max: as.MaxInstances,
		MaxConcurrent: p.MaxConcurrentPerInstance, TargetUtilization: as.TargetUtilization,
		Polling: as.PollingInterval, StableWindow: as.StableWindow, PanicWindow: as.PanicWindow,
		PanicThreshold: as.PanicThreshold, ScaleDownDelay: as.ScaleDownDelay, ScaleToZeroAfter: as.ScaleToZeroAfter,
	}
}

// track returns the deployment's state, made on first sight from its
// stored decision (a previous leader's) or its plan's starting count.
func (a *Autoscaler) track(k string, v *view, now time.Time) *depScale {
	a.mu.Lock()
	defer a.mu.Unlock()
	ds := a.deps[k]
	if ds == nil {
		desired := v.plan.InstanceCount
		if v.hasScale && !v.scale.DecidedAt.IsZero() {
			desired = v.scale.Desired
		}
		ds = &depScale{endpoint: v.d.Endpoint, name: v.d.Name, generation: v.d.Generation,
			dec: newDecider(settings(v.plan), now, desired), seen: map[string]seenDemand{}, desired: desired,
			panic: v.scale.Panic}
		a.deps[k] = ds
	}
	ds.dec.s = settings(v.plan) // an update may change them; nothing restarts
	return ds
}

// seenDemand is a gateway's last counters for a deployment, when its
// report was written, and the concurrency they showed.
type seenDemand struct {
	d    store.Demand
	at   time.Time
	rate float64
}

// demand sums what the fresh reports say of the deployment: the
// concurrency (each gateway's average between its last two reports, on
// its own clock), the requests admitted since the last pass, and the
// requests pending now.
func (ds *depScale) demand(k string, reports []store.GatewayReport) (conc float64, arrivals int64, pending int) {
	live := map[string]bool{}
	for _, r := range reports {
		d, ok := r.Demand[k]
		if !ok {
			continue
		}
		live[r.ID] = true
		now := d.InFlight + d.Queued
		pending += now
		at := d.At // the gateway's own clock, when it read its counters
		if at.IsZero() {
			at = r.UpdatedAt
		}
		prev, seen := ds.seen[r.ID]
		same := seen && prev.d.Since.Equal(d.Since) && d.Busy >= prev.d.Busy && d.Arrivals >= prev.d.Arrivals
		switch {
		case same && !at.After(prev.at):
			// No new report since the last pass: its last rate stands.
		case same:
			prev.rate = (d.Busy - prev.d.Busy) / at.Sub(prev.at).Seconds()
			arrivals += d.Arrivals - prev.d.Arrivals
			prev.d, prev.at = d, at
		default:
			// The first report of this gateway, or its counters restarted:
			// a baseline, with no rate until the next report. (Its pending
			// requests still count now: they are what starts a deployment
			// at zero.)
			prev = seenDemand{d: d, at: at}
		}
		ds.seen[r.ID] = prev
		conc += prev.rate
	}
	for id := range ds.seen {
		if !live[id] {
			delete(ds.seen, id)
		}
	}
	return conc, arrivals, pending
}

// record keeps the decision in the store, where the API shows it and a
// next leader starts from it.
func (a *Autoscaler) record(ctx context.Context, v *view, dec decision) error {
	_, err := a.cfg.Store.UpdateScale(ctx, v.d.Endpoint, v.d.Name, func(sc *store.Scale) error {
		sc.Desired, sc.Panic, sc.Utilization = dec.desired, dec.panicking, dec.utilization
		if dec.changed || sc.DecidedAt.IsZero() {
			sc.DecidedAt = time.Now()
			sc.Decision = dec.why
			if sc.Decision == "" {
				sc.Decision = fmt.Sprintf("%d instance(s)", dec.desired)
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// event records a decision as the deployment's event and in the log.
func (a *Autoscaler) event(d store.Deployment, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.cfg.Store.AppendEvent(ctx, store.Event{Endpoint: d.Endpoint, Deployment: d.Name, Type: "Normal", Reason: "Scaled", Message: msg})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.log.Error("autoscaler: record event", "err", err)
	}
	a.log.Info(msg, "endpoint", d.Endpoint, "deployment", d.Name, "reason", "Scaled")
}
