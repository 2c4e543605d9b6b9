// Package reconcile makes deployments real: it compares each deployment's
// desired state (its resolved Plan and instance_count, in the store) with the
// instances a driver runs, and acts — start, probe, restart, scale, replace
// one at a time, drain and stop — until they agree.
//
// It is written the way controller-runtime reconcilers are: a work queue of
// deployment keys ("endpoint/deployment"), a few workers, and
// Reconcile(key) that re-reads the deployment and its instances, takes one
// step and says when to look again. A key is never reconciled by two
// workers at once, and slow work for one deployment (pre-start checks,
// materialising artifacts, a driver start) never holds up another. It is
// level-based and idempotent: a missed notification only delays the next
// resync. Failures carry a typed reason.Reason: a terminal one (a user
// mistake: a missing R package, a script that cannot start) makes the
// deployment Failed until it changes; a transient one (an I/O error, a busy
// driver) is retried with capped exponential backoff.
//
// Everything the data plane needs about an instance (address, readiness,
// the routes and limits of the plan it runs) is written to the store as it
// changes; gateways build their routing tables from those rows, in this
// process or any other. After a restart, Start re-adopts the instances the
// driver still runs whose template matches the desired plan.
//
// This package may import store, driver, resolve, reason and plumber; it
// must not import the gateway or the API server.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// Artifacts gives read-only host folders for artifact digests.
type Artifacts interface {
	Materialize(ctx context.Context, digest string) (string, error)
}

// Checker runs once per plan before its first instance starts. A non-nil
// error is terminal for that plan (the deployment fails with its text);
// warnings become events.
type Checker interface {
	Check(ctx context.Context, p *resolve.Plan, codeDir string) (warnings []string, err error)
}

// Preparer makes what a plan needs before its first instance starts (its
// container image, built or pulled) without holding up the worker: it
// reports false while the work goes on in the background, and is asked
// again later (it calls Notify when done). A non-nil error is terminal for
// that plan; a *reason.Reason says its code, else a "Code: message" text
// does.
type Preparer interface {
	Prepare(ctx context.Context, p *resolve.Plan) (ready bool, err error)
}

// Config wires a Reconciler. Zero durations take the documented defaults.
type Config struct {
	Store     store.Store
	Driver    driver.Driver
	Artifacts Artifacts
	// Checker is optional; nil skips pre-start checks.
	Checker Checker
	// Images is optional; nil means plans need no preparation (the
	// process driver).
	Images Preparer
	// Sample is optional; nil skips deployments' sample requests.
	Sample SampleTester
	Logger *slog.Logger
	// OnChange is called (without locks held) after an instance's stored
	// row changed in a way that matters to routing. An instance taken out
	// of routing is drained and stopped only after OnChange returns, so a
	// synchronous OnChange that rebuilds an in-process gateway's table
	// guarantees no new request from it reaches an instance being stopped.
	// Nil means no-op.
	OnChange func()
	// InFlight, if set, reports how many requests may still reach an
	// instance that left routing: requests in flight on it, plus gateways
	// that have not yet dropped it from their tables. Stopping waits for
	// zero (bounded by the request timeout) before signalling the process.
	InFlight func(endpoint, deployment, instance string) int
	// Fence, if set, is asked before every driver Start. An error (this
	// replica lost its leader lease: store.ErrFenced) means nothing is
	// started; whoever runs the reconciler should then stop it.
	Fence func(ctx context.Context) error

	// Workers is how many deployments are reconciled at once (default 8).
	Workers int
	// Resync is the period of a full pass without notifications (default 2s).
	Resync time.Duration
	// StartupPoll is how often readiness is probed before an instance's first
	// ready when the probe has no initial_delay (default 200ms).
	StartupPoll time.Duration
	// StopGrace is how long an instance gets between SIGTERM and SIGKILL
	// (default 10s).
	StopGrace time.Duration
	// MaxStartupCrashes is how many times instances of a new plan may exit
	// before any was ever ready before the deployment fails (default 2: one
	// retry covers a port lost to a race; a script that cannot start fails
	// fast).
	MaxStartupCrashes int
	// MaxBackoff caps the restart backoff (default 30s).
	MaxBackoff time.Duration
	// MinStartupDeadline is the least time a new plan gets to become ready
	// (default 1m; the readiness probe settings may give it more).
	MinStartupDeadline time.Duration
}

// Reconciler drives instances toward the desired state. Create it with New
// and run it with Start (once).
type Reconciler struct {
	cfg         Config
	log         *slog.Logger
	probeClient *http.Client
	kick        chan struct{}
	queue       workqueue.TypedRateLimitingInterface[string]

	mu   sync.Mutex // protects deps
	deps map[string]*depState

	// life ends when Start returns; monitors derive their contexts from it.
	life      context.Context
	endOfLife context.CancelFunc

	wg sync.WaitGroup // background stops and monitors
}

// depState is the in-memory state of one deployment.
type depState struct {
	endpoint, name string
	instances      map[string]*instance // by instance name
	generation     int64
	deadline       time.Time
	crashes        int                  // exits before first ready for the current generation
	restarts       map[string]int       // consecutive restarts per instance name
	notBefore      map[string]time.Time // backoff per instance name
	checkedHash    string
	totalRestarts  map[string]int
}

// Requeue delays.
const (
	// progressRequeue is how soon a deployment that is creating, updating,
	// stopping or waiting for a restart is looked at again, besides the
	// wake-ups its instances' monitors send.
	progressRequeue = 500 * time.Millisecond
)

func key(endpoint, deployment string) string { return endpoint + "/" + deployment }

// New returns a Reconciler; call Start to run it.
func New(cfg Config) *Reconciler {
	if cfg.Resync == 0 {
		cfg.Resync = 2 * time.Second
	}
	if cfg.StartupPoll == 0 {
		cfg.StartupPoll = 200 * time.Millisecond
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.MaxStartupCrashes == 0 {
		cfg.MaxStartupCrashes = 2
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MinStartupDeadline == 0 {
		cfg.MinStartupDeadline = time.Minute
	}
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	life, end := context.WithCancel(context.Background())
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, cfg.MaxBackoff)
	return &Reconciler{
		life: life, endOfLife: end,
		cfg:   cfg,
		log:   cfg.Logger,
		kick:  make(chan struct{}, 1),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployments"}),
		deps:  map[string]*depState{},
		probeClient: &http.Client{Transport: &http.Transport{
			DisableKeepAlives: true,
			Proxy:             nil,
			DialContext:       dialInstance,
		}},
	}
}

// dialInstance dials an instance address for probes: "unix:/path" over a
// unix socket, anything else over TCP. Probe URLs carry the address in
// their host only for TCP; a unix address is passed as the host "unix" and
// the path in the context.
func dialInstance(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if p, ok := ctx.Value(unixSocketKey{}).(string); ok {
		return d.DialContext(ctx, "unix", p)
	}
	return d.DialContext(ctx, network, addr)
}

type unixSocketKey struct{}

// Notify asks for every deployment to be reconciled soon. It never blocks.
func (r *Reconciler) Notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// enqueue asks for one deployment to be reconciled soon.
func (r *Reconciler) enqueue(endpoint, deployment string) { r.queue.Add(key(endpoint, deployment)) }

// Start re-adopts what a previous run left, then reconciles until ctx ends:
// Workers goroutines take deployment keys from the queue, and a lister
// enqueues every deployment on Notify, on a change of the store, and every
// Resync. On return every worker and monitor has stopped; instances keep
// running (the next Start re-adopts them) unless their deployments were
// deleted.
func (r *Reconciler) Start(ctx context.Context) error {
	if err := r.recover(ctx); err != nil {
		// Serving what can be served beats refusing to start; the driver
		// has logged which leftover it could not end.
		r.log.Error("recovering what a previous run left", "err", err)
	}
	defer r.wg.Wait()
	defer r.endOfLife()
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for r.processNext(ctx) {
			}
		}()
	}
	defer workers.Wait()
	defer r.queue.ShutDown()

	changes := make(chan struct{}, 1)
	go r.watchStore(ctx, changes)
	t := time.NewTicker(r.cfg.Resync)
	defer t.Stop()
	for {
		r.list(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-changes:
		case <-t.C:
		}
	}
}

// watchStore signals changes when the store's routing version moves (a
// deployment created or changed through the API of any replica).
func (r *Reconciler) watchStore(ctx context.Context, changes chan<- struct{}) {
	v, err := r.cfg.Store.RoutingVersion(ctx)
	for ctx.Err() == nil {
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			v, err = r.cfg.Store.RoutingVersion(ctx)
			continue
		}
		var nv int64
		nv, err = r.cfg.Store.WaitRoutingChange(ctx, v)
		if err == nil {
			v = nv
			select {
			case changes <- struct{}{}:
			default:
			}
		}
	}
}

// processNext reconciles one key from the queue; false once the queue is
// shut down.
func (r *Reconciler) processNext(ctx context.Context) bool {
	k, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(k)
	after, err := r.reconcileKey(ctx, k)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		r.log.Warn("reconcile: will retry", "deployment", k, "err", err)
		r.queue.AddRateLimited(k)
	default:
		r.queue.Forget(k)
		if after > 0 {
			r.queue.AddAfter(k, after)
		}
	}
	return true
}

// list enqueues every deployment (and every one this reconciler still runs
// instances of), and deletes endpoints being deleted once their
// deployments are gone.
func (r *Reconciler) list(ctx context.Context) {
	eps, err := r.cfg.Store.ListEndpoints(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile: list endpoints", "err", err)
		}
		return
	}
	deps, err := r.cfg.Store.ListDeployments(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile: list deployments", "err", err)
		}
		return
	}
	remaining := map[string]int{}
	for _, d := range deps {
		remaining[d.Endpoint]++
		r.enqueue(d.Endpoint, d.Name)
	}
	r.mu.Lock()
	for k := range r.deps {
		r.queue.Add(k) // a deployment that vanished: its instances stop
	}
	r.mu.Unlock()
	for _, e := range eps {
		if e.State == store.StateDeleting && remaining[e.Name] == 0 {
			if err := r.cfg.Store.DeleteEndpoint(ctx, e.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				r.log.Error("delete endpoint", "endpoint", e.Name, "err", err)
				continue
			}
			r.log.Info("endpoint deleted", "endpoint", e.Name)
			r.cfg.OnChange()
		}
	}
}

// reconcileKey is Reconcile(key): it re-reads one deployment and takes one
// step toward what it wants. It returns when to look again (0: only when
// something changes), or a transient error to retry with backoff.
func (r *Reconciler) reconcileKey(ctx context.Context, k string) (time.Duration, error) {
	endpoint, name, _ := strings.Cut(k, "/")
	d, err := r.cfg.Store.GetDeployment(ctx, endpoint, name)
	if errors.Is(err, store.ErrNotFound) {
		// Gone from the store: stop what still runs, then forget it.
		r.mu.Lock()
		ds := r.deps[k]
		r.mu.Unlock()
		if ds == nil {
			return 0, nil
		}
		if r.stopAll(ds, "deployment removed") > 0 {
			return progressRequeue, nil
		}
		r.mu.Lock()
		delete(r.deps, k)
		r.mu.Unlock()
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read deployment %s: %w", k, err)
	}
	endpointDeleting := false
	if e, err := r.cfg.Store.GetEndpoint(ctx, endpoint); err == nil {
		endpointDeleting = e.State == store.StateDeleting
	}
	return r.reconcileDeployment(ctx, &d, endpointDeleting)
}

func instanceID(endpoint, deployment, name string) string {
	return endpoint + "." + deployment + "." + name
}
