package server

import (
	"context"
	"strings"

	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// storeSource is the gateway's RouteSource on the shared store: routing
// tables built from endpoint, deployment and instance rows, a wait on the
// store's routing version (in-process signal on SQLite, LISTEN/NOTIFY on
// PostgreSQL), and the gateway's reports kept as its GatewayReport row.
type storeSource struct {
	st   store.Store
	id   string // the gateway replica's report ID
	addr string
	// onCold, if set, is called after a report that says a request waits
	// at a deployment with no ready instance (this process's autoscaler,
	// when it leads, decides at once).
	onCold func()
}

var (
	_ gateway.RouteSource    = (*storeSource)(nil)
	_ gateway.DemandReporter = (*storeSource)(nil)
)

// Routes implements gateway.RouteSource. The version is read before the
// table, so the table reflects at least that version.
func (s *storeSource) Routes(ctx context.Context, after int64) (*gateway.Snapshot, int64, error) {
	v, err := s.st.WaitRoutingChange(ctx, after)
	if err != nil {
		return nil, 0, err
	}
	snap, err := buildSnapshot(ctx, s.st)
	if err != nil {
		return nil, 0, err
	}
	return snap, v, nil
}

// Report implements gateway.RouteSource.
func (s *storeSource) Report(ctx context.Context, reachable map[string]int) error {
	return s.st.PutGatewayReport(ctx, store.GatewayReport{ID: s.id, Addr: s.addr, Instances: reachable})
}

// ReportDemand implements gateway.DemandReporter: the reachable instances
// and the demand per deployment go into the gateway's one report row.
func (s *storeSource) ReportDemand(ctx context.Context, reachable map[string]int, demand map[string]gateway.Demand) error {
	out := make(map[string]store.Demand, len(demand))
	cold := false
	for k, d := range demand {
		out[k] = store.Demand{InFlight: d.InFlight, Queued: d.Queued, Ready: d.Ready, Arrivals: d.Arrivals, Busy: d.Busy, Since: d.Since, At: d.At}
		cold = cold || (d.Queued > 0 && d.Ready == 0)
	}
	err := s.st.PutGatewayReport(ctx, store.GatewayReport{ID: s.id, Addr: s.addr, Instances: reachable, Demand: out})
	if err == nil && cold && s.onCold != nil {
		s.onCold()
	}
	return err
}

// sync rebuilds gw's table now, before returning. The API calls it after a
// change of traffic, keys or auth mode, and the reconciler before it drains
// an instance, so that once the change is acknowledged every new request
// through this process's gateway sees it.
func (s *storeSource) sync(ctx context.Context, gw *gateway.Gateway) error {
	v, err := s.st.RoutingVersion(ctx)
	if err != nil {
		return err
	}
	snap, err := buildSnapshot(ctx, s.st)
	if err != nil {
		return err
	}
	gw.Apply(snap, v)
	return nil
}

// buildSnapshot assembles an immutable routing table from the store: each
// endpoint with its keys and traffic, each deployment with the settings of
// the plan that serves, and each routable instance with the routes of the
// plan it runs.
func buildSnapshot(ctx context.Context, st store.Store) (*gateway.Snapshot, error) {
	eps, err := st.ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := st.ListDeployments(ctx, "")
	if err != nil {
		return nil, err
	}
	rows, err := st.ListInstances(ctx, "", "")
	if err != nil {
		return nil, err
	}
	rollouts, err := st.ListRollouts(ctx, store.RolloutFilter{ActiveOnly: true})
	if err != nil {
		return nil, err
	}
	snap := assemble(eps, deps, rows)
	applyRollouts(snap, rollouts)
	return snap, nil
}

// assemble is buildSnapshot without the store, for tests.
func assemble(eps []store.Endpoint, deps []store.Deployment, rows []store.Instance) *gateway.Snapshot {
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
			Generation:      e.Generation,
			Compare:         compareOf(e),
		}
	}
	byDep := map[string][]store.Instance{}
	starting := map[string]int{}
	for _, r := range rows {
		k := r.Endpoint + "/" + r.Deployment
		switch {
		case r.Routable && r.Addr != "":
			byDep[k] = append(byDep[k], r)
		case r.State == store.InstanceStarting:
			starting[k]++
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
		failed := d.State == store.StateFailed && d.ObservedGeneration == d.Generation
		if failed && rec.Previous != nil && rec.Previous.Plan != nil {
			p, failed = rec.Previous.Plan, false // the failed version runs nothing; the last good one serves
		}
		gd := &gateway.Deployment{
			Name:                     d.Name,
			ScoringPath:              p.Scoring.Path,
			OpenAPIPath:              p.OpenAPIPath,
			RequestTimeout:           p.RequestTimeout,
			MaxConcurrentPerInstance: p.MaxConcurrentPerInstance,
			MaxQueueWait:             p.MaxQueueWait, // zero for managed deployments: queue time counts inside RequestTimeout
			ModelName:                p.ModelName,
			ModelVersion:             p.ModelVersion,
			ModelDigest:              p.ModelDigest,
			Contract:                 p.Contract,
			Capture:                  captureOf(rec),
			Starting:                 starting[d.Endpoint+"/"+d.Name],
		}
		if a := p.Autoscale; a.CanScale() && !failed {
			// The autoscaler adds instances under load and starts one for
			// a request at zero: hold requests up to what the deployment
			// holds at its largest.
			gd.OnDemand = a.MinInstances == 0
			gd.MaxPending = a.MaxPending
		}
		current := p.TemplateHash()
		for _, r := range byDep[d.Endpoint+"/"+d.Name] {
			in := gateway.Instance{Name: r.Name, Addr: r.Addr, ScoringPath: r.ScoringPath, OpenAPIPath: r.OpenAPIPath}
			if r.Template != current {
				// An instance of another version keeps its own limit; one of
				// the serving version follows request_settings as they
				// change (a limit change restarts nothing).
				in.MaxConcurrent = r.MaxConcurrent
				provenanceOf(&in, rec, p, r.Template)
			}
			gd.Instances = append(gd.Instances, in)
		}
		ep.Deployments[strings.ToLower(d.Name)] = gd
	}
	return snap
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
