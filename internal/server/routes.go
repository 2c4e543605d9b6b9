package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// router rebuilds the gateway's routing snapshot from the store (endpoints,
// keys, traffic, deployment settings) and the reconciler (ready instances)
// whenever either says something changed, and every few seconds anyway.
type router struct {
	mu   sync.Mutex // serialises rebuilds so a newer table is never replaced by an older one
	st   store.Store
	rec  *reconcile.Reconciler
	gw   *gateway.Gateway
	log  *slog.Logger
	kick chan struct{}
}

func newRouter(st store.Store, rec *reconcile.Reconciler, gw *gateway.Gateway, log *slog.Logger) *router {
	return &router{st: st, rec: rec, gw: gw, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks for a rebuild soon; it never blocks.
func (r *router) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Start rebuilds on every kick until ctx ends.
func (r *router) Start(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if err := r.rebuild(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("rebuild routing table", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-t.C:
		}
	}
}

// Sync rebuilds the table now, before returning: the API calls it after a
// change of traffic, keys or auth mode, so that once the change is
// acknowledged every new request sees it (no window where a client must
// poll, as Azure's users must).
func (r *router) Sync() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.rebuild(ctx); err != nil {
		r.log.Error("rebuild routing table", "err", err)
		r.Kick()
	}
}

func (r *router) rebuild(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap, err := buildSnapshot(ctx, r.st, r.rec.Routes())
	if err != nil {
		return err
	}
	r.gw.Update(snap)
	return nil
}

// buildSnapshot assembles an immutable routing table.
func buildSnapshot(ctx context.Context, st store.Store, routes map[string][]reconcile.RoutableInstance) (*gateway.Snapshot, error) {
	eps, err := st.ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := st.ListDeployments(ctx, "")
	if err != nil {
		return nil, err
	}
	snap := &gateway.Snapshot{Endpoints: make(map[string]*gateway.Endpoint, len(eps))}
	for _, e := range eps {
		if e.State == store.StateDeleting {
			continue
		}
		snap.Endpoints[strings.ToLower(e.Name)] = &gateway.Endpoint{
			Name:            e.Name,
			ID:              e.ID,
			TokenGeneration: e.TokenGeneration,
			AuthMode:        e.AuthMode,
			Keys:            []string{e.PrimaryKey, e.SecondaryKey},
			Traffic:         copyMap(e.Traffic),
			Mirror:          copyMap(e.Mirror),
			Deployments:     map[string]*gateway.Deployment{},
		}
	}
	for _, d := range deps {
		ep := snap.Endpoints[strings.ToLower(d.Endpoint)]
		if ep == nil || d.State == store.StateDeleting {
			continue
		}
		rec, err := resolve.DecodeRecord(d.Spec)
		if err != nil || rec.Plan == nil {
			continue
		}
		p := rec.Plan
		if d.State == store.StateFailed && d.ObservedGeneration == d.Generation && rec.Previous != nil && rec.Previous.Plan != nil {
			p = rec.Previous.Plan // the failed version runs nothing; the last good one serves
		}
		gd := &gateway.Deployment{
			Name:                     d.Name,
			ScoringPath:              p.Scoring.Path,
			OpenAPIPath:              p.OpenAPIPath,
			RequestTimeout:           p.RequestTimeout,
			MaxConcurrentPerInstance: p.MaxConcurrentPerInstance,
			MaxQueueWait:             p.MaxQueueWait,
			ModelName:                p.ModelName,
			ModelVersion:             p.ModelVersion,
			Contract:                 p.Contract,
		}
		for _, in := range routes[reconcile.RouteKey(d.Endpoint, d.Name)] {
			gd.Instances = append(gd.Instances, gateway.Instance{Name: in.Name, Addr: in.Addr})
		}
		ep.Deployments[strings.ToLower(d.Name)] = gd
	}
	return snap, nil
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
