package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/autoscale"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/datadir"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/process"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/smoke"
	"github.com/plumbline/plumbline/internal/store"
)

// reportFresh is how recent a gateway's report must be to count: a gateway
// that stopped reporting (killed) no longer holds up a drain after it.
const reportFresh = 3 * time.Second

// control is the control plane of a replica: the registry and the API's
// runtime view on every control replica; the driver and the reconciler on
// the one that holds the leader lease.
type control struct {
	cfg   Config
	dd    *datadir.Dir
	st    store.Store
	reg   *registry.Registry
	gw    *gateway.Gateway // this process's gateway (role all), or nil
	gwID  string           // its report ID
	sync  func()           // rebuilds gw's table now
	root  context.Context  // ends when the server shuts down
	log   *slog.Logger
	elect *elector

	// shared is a driver that lives as long as the server (docker: no
	// exclusive state, and the image builder serves the API on every
	// replica); nil for the process driver, which is opened while leading
	// (its state dir lock keeps a second one off the same instances).
	shared closingDriver
	images *imageHooks
	// runAs is the user the process driver's instances run as (nil: the
	// server's own; see instanceIsolation).
	runAs *process.RunAs

	rec atomic.Pointer[reconcile.Reconciler] // while leading
	as  atomic.Pointer[autoscale.Autoscaler] // while leading
	// scaleMetrics are the autoscaler's metrics, kept across leader terms
	// (nil: none).
	scaleMetrics *autoscale.Metrics

	// rolloutWake, if set, asks the rollout controller for a pass at once
	// (this process's gateway saw a gate breached).
	rolloutWake chan struct{}
}

var _ interface {
	Notify()
	Instances(endpoint, deployment string) []api.Instance
	Logs(ctx context.Context, endpoint, deployment, instance string, lines int, follow bool, w io.Writer) error
} = (*control)(nil)

func newControl(ctx context.Context, cfg Config, dd *datadir.Dir, st store.Store, gw *gateway.Gateway, src *storeSource, sync func(), root context.Context, log *slog.Logger) (*control, error) {
	blobs, err := blob.New(dd.BlobsDir())
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	if err := datadir.MkdirPrivate(dd.CacheDir()); err != nil {
		return nil, err
	}
	if err := datadir.MkdirPrivate(dd.InstancesDir()); err != nil {
		return nil, err
	}
	c := &control{
		cfg: cfg, dd: dd, st: st, gw: gw, sync: sync, root: root, log: log,
		reg:   registry.New(st, blobs, dd.CacheDir(), cfg.Uploads),
		elect: &elector{st: st, holder: cfg.ReplicaID, log: log.With("component", "leader")},
	}
	c.reg.SetLogger(log.With("component", "registry"))
	if !isPostgres(cfg.Store) {
		// One server per data dir (its lock is held): what is half-written
		// there is a crash's leftover, not another replica's upload.
		removePartial(c.reg, log)
	}
	if cfg.Driver == "" || cfg.Driver == "process" {
		if c.runAs, err = instanceIsolation(cfg, dd, c.reg, log); err != nil {
			return nil, err
		}
	}
	if src != nil {
		c.gwID = src.id
	}
	if cfg.Driver != "" && cfg.Driver != "process" {
		drv, hooks, err := newDriver(ctx, cfg, dd, c.reg, st, log)
		if err != nil {
			return nil, err
		}
		c.shared, c.images = drv, hooks
		if hooks != nil {
			hooks.Notify = c.Notify
		}
	}
	return c, nil
}

// Close closes a shared driver.
func (c *control) Close() {
	if c.shared != nil {
		c.shared.Close()
	}
}

// driverName is the driver's name for the API's server info.
func (c *control) driverName() string {
	if c.shared != nil {
		return c.shared.Name()
	}
	return "process"
}

// Start campaigns for the leader lease and, while leading, runs the driver
// and the reconciler.
func (c *control) Start(ctx context.Context) error { return c.elect.Start(ctx, c.lead) }

// lead runs while this replica leads: it opens the process driver (whose
// state dir lock keeps a second driver off the same instances), re-adopts
// what the previous leader or run left, and reconciles until leadership
// ends. On a server shutdown with OnExit stop it stops every instance.
func (c *control) lead(ctx context.Context) error {
	drv := c.shared
	for drv == nil {
		pd, err := process.New(process.Config{StateDir: c.dd.InstancesDir(), Rscript: c.cfg.Rscript, RunAs: c.runAs, Logger: c.log.With("component", "driver")})
		if err == nil {
			drv = pd
			defer pd.Close()
			break
		}
		// The previous leader may still be closing its driver.
		c.log.Warn("process driver not available yet", "err", err)
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return nil
		}
	}
	// The autoscaler decides counts; the reconciler, told of each change,
	// starts and stops instances to match. Primed first, so that the
	// reconciler never acts on a count the last leader had changed.
	var rec *reconcile.Reconciler
	as := autoscale.New(autoscale.Config{
		Store:   c.st,
		Metrics: c.scaleMetrics,
		Logger:  c.log.With("component", "autoscaler"),
		Scaled: func(endpoint, deployment string) {
			if rec != nil {
				rec.Enqueue(endpoint, deployment)
			}
		},
	})
	if err := as.Prime(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("autoscaler: read the last decisions", "err", err)
	}
	rec = reconcile.New(reconcile.Config{
		Store:     c.st,
		Driver:    drv,
		Scaler:    as,
		Artifacts: c.reg,
		Checker:   checker(c.cfg, c.reg, c.images, c.runAs.Sandbox),
		Images:    preparer(c.images),
		Sample:    smoke.New(),
		Logger:    c.log.With("component", "reconciler"),
		// Synchronous: when an instance leaves the pool, this process's
		// gateway stops routing to it before the reconciler drains it;
		// other gateways report when they have let go (InFlight).
		OnChange: c.sync,
		InFlight: c.inFlight,
		Fence:    c.elect.fence,
	})
	c.rec.Store(rec)
	c.as.Store(as)
	asDone := make(chan struct{})
	go func() {
		defer close(asDone)
		_ = as.Start(ctx)
	}()
	stopRollouts := c.runRollouts(ctx)
	err := rec.Start(ctx)
	stopRollouts()
	<-asDone
	c.as.Store(nil)
	c.rec.Store(nil)
	if c.root.Err() != nil && c.cfg.OnExit == OnExitStop {
		c.stopInstances(drv)
	} else if c.root.Err() != nil {
		if list, _ := drv.List(context.Background()); len(list) > 0 {
			c.log.Info("instances left running for the next start to re-adopt (serve --on-exit stop stops them)", "count", len(list))
		}
	}
	return err
}

// inFlight counts the ways a request may still reach an instance: this
// process's gateway still lists it or has requests on it, and every other
// gateway whose fresh report names it.
func (c *control) inFlight(endpoint, deployment, instance string) int {
	k := strings.ToLower(endpoint + "/" + deployment + "/" + instance)
	n := 0
	if c.gw != nil {
		if v, ok := c.gw.Reachable()[k]; ok {
			n += max(v, 1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	reports, err := c.st.ListGatewayReports(ctx, time.Now().Add(-reportFresh))
	if err != nil {
		return n + 1 // unknown: keep waiting; the drain is bounded anyway
	}
	for _, r := range reports {
		if r.ID == c.gwID {
			continue // this process's gateway, counted above
		}
		if v, ok := r.Instances[k]; ok {
			n += max(v, 1)
		}
	}
	return n
}

// stopInstances stops every instance the driver runs, in parallel, and
// removes their rows, on a full shutdown.
func (c *control) stopInstances(drv driver.Driver) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := drv.List(ctx)
	if err != nil {
		c.log.Error("list instances", "err", err)
		return
	}
	rows, _ := c.st.ListInstances(ctx, "", "")
	var wg sync.WaitGroup
	for _, st := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := drv.Stop(ctx, st.ID, 5*time.Second); err != nil {
				c.log.Error("stop instance", "instance", st.ID, "err", err)
				return
			}
			for _, r := range rows {
				if r.ID == st.ID {
					_ = c.st.DeleteInstance(ctx, r.Endpoint, r.Deployment, r.Name)
				}
			}
		}()
	}
	wg.Wait()
	if len(list) > 0 {
		c.log.Info("instances stopped", "count", len(list))
	}
}

// kickAutoscaler asks the autoscaler for a pass now, when this replica
// leads (a gateway of this process reported a request waiting at zero
// instances); a leader elsewhere reads the report within its tick.
func (c *control) kickAutoscaler() {
	if as := c.as.Load(); as != nil {
		as.Kick()
	}
}

// Notify asks the reconciler for a pass, when this replica leads; the
// leader elsewhere sees the change through the store.
func (c *control) Notify() {
	if rec := c.rec.Load(); rec != nil {
		rec.Notify()
	}
	c.kickAutoscaler() // a pre-warm or a change of scale settings
}

// Instances reports a deployment's instances from the store, as every
// control replica sees them.
func (c *control) Instances(endpoint, deployment string) []api.Instance {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.st.ListInstances(ctx, endpoint, deployment)
	if err != nil {
		c.log.Error("list instances", "err", err)
		return nil
	}
	var out []api.Instance
	for _, r := range rows {
		msg := ""
		if r.State == store.InstanceStarting || r.State == store.InstanceUnready {
			msg = r.LastProbe
		}
		out = append(out, api.Instance{Name: r.Name, State: r.State, Ready: r.Routable, Restarts: r.Restarts, Started: r.StartedAt, Message: msg})
	}
	return out
}

// ErrNotLeader: this control replica does not run the instances.
var ErrNotLeader = errors.New("this control replica is not the leader; instance logs are read through the leader")

// Logs reads instance logs through the driver, on the leader.
func (c *control) Logs(ctx context.Context, endpoint, deployment, instance string, lines int, follow bool, w io.Writer) error {
	rec := c.rec.Load()
	if rec == nil {
		return ErrNotLeader
	}
	return rec.Logs(ctx, endpoint, deployment, instance, lines, follow, w)
}

// ContainerLogs reads one container's logs of each instance (Kubernetes:
// the storage initializer's), on the leader.
func (c *control) ContainerLogs(ctx context.Context, endpoint, deployment, instance, container string, lines int, follow bool, w io.Writer) error {
	rec := c.rec.Load()
	if rec == nil {
		return ErrNotLeader
	}
	return rec.ContainerLogs(ctx, endpoint, deployment, instance, container, lines, follow, w)
}
