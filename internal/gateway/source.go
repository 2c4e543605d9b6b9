package gateway

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// RouteSource is how a gateway learns its routing table (endpoints, their
// keys, deployments and ready instances) and tells the control plane which
// instances it may still send requests to. The server wires it: from the
// shared store for plumbline's own replicas; a Kubernetes source would
// build the same Snapshot from EndpointSlices. It is the gateway's only
// input besides its Config, so the gateway never imports a store or a
// driver.
type RouteSource interface {
	// Routes returns the routing table once its version is greater than
	// after (after 0: at once), with that version. It blocks until then or
	// until ctx ends.
	Routes(ctx context.Context, after int64) (*Snapshot, int64, error)
	// Report publishes Reachable(): the instances this gateway may still
	// send requests to. A control plane stops an instance only once no
	// gateway reports it (or a bounded grace passed).
	Report(ctx context.Context, reachable map[string]int) error
}

// ReportInterval is how often Follow reports, besides right after every
// table change.
const ReportInterval = 250 * time.Millisecond

// Follow keeps the gateway's table in step with src and reports what it may
// still reach, until ctx ends. Errors are logged and retried with capped
// backoff; the gateway keeps serving its last table meanwhile.
func (g *Gateway) Follow(ctx context.Context, src RouteSource, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.reportLoop(ctx, src, changed, log)
	}()
	defer func() { <-done }()
	var v int64
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		snap, nv, err := src.Routes(ctx, v)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Error("gateway: read routing table", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		g.Apply(snap, nv)
		v = nv
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// reportLoop reports Reachable after every table change and every
// ReportInterval.
func (g *Gateway) reportLoop(ctx context.Context, src RouteSource, changed <-chan struct{}, log *slog.Logger) {
	t := time.NewTicker(ReportInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
		err := src.Report(ctx, g.Reachable())
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("gateway: report reachable instances", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("gateway: reporting again")
			failing = false
		}
	}
}

// Apply swaps in s as the routing table unless a newer version was applied
// already (two builders racing never move the table back).
func (g *Gateway) Apply(s *Snapshot, version int64) {
	g.versionMu.Lock()
	defer g.versionMu.Unlock()
	if version < g.version {
		return
	}
	g.version = version
	g.Update(s)
}

// Reachable lists the instances the gateway may still send requests to:
// every instance of its current table and every instance with requests in
// flight (removed ones included), keyed "endpoint/deployment/instance"
// (lower-case), with the number in flight.
func (g *Gateway) Reachable() map[string]int {
	g.mu.Lock()
	g.pruneDrainingLocked()
	pools := make([]*pool, 0, len(g.pools))
	for _, p := range g.pools {
		pools = append(pools, p)
	}
	for _, ps := range g.draining {
		pools = append(pools, ps...)
	}
	g.mu.Unlock()
	out := map[string]int{}
	for _, p := range pools {
		p.mu.Lock()
		for _, in := range p.known {
			if in.listed || in.active > 0 {
				k := strings.ToLower(p.endpoint + "/" + p.deployment + "/" + in.name)
				out[k] += in.active
			}
		}
		p.mu.Unlock()
	}
	return out
}
