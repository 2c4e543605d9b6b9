package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/reason"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

func lastLinesSuffix(lines string) string {
	if lines == "" {
		return ""
	}
	return "; last log lines: " + lines
}

// lastLines returns the instance's last n log lines joined with " | ".
func (r *Reconciler) lastLines(id string, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rc, err := r.cfg.Driver.Logs(ctx, id, driver.LogOptions{Tail: n})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := rc.Read(buf)
		b.Write(buf[:k])
		if err != nil || b.Len() > 64<<10 {
			break
		}
	}
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, " | ")
}

// notReadyReason explains a deadline failure.
func (r *Reconciler) notReadyReason(ds *depState, hash string, p *resolve.Plan) *reason.Reason {
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		if in.hash == hash && !v.ready {
			return reason.Terminal(reason.ResourceNotReady, "instance %s did not become ready within %s (readiness probe %s %s)%s",
				in.name, r.startupDeadline(p), p.Readiness.Path, orDash(v.lastProbeError), lastLinesSuffix(r.lastLines(in.id, 10)))
		}
	}
	return reason.Terminal(reason.ResourceNotReady, "the deployment did not become ready within %s", r.startupDeadline(p))
}

func orDash(s string) string {
	if s == "" {
		return "never answered"
	}
	return s
}

// persist writes the instance's observed state to the store, where every
// gateway reads it, and then calls OnChange. Errors are logged: the next
// change or resync writes again.
func (r *Reconciler) persist(in *instance) {
	v := in.view()
	row := store.Instance{
		Endpoint: in.endpoint, Deployment: in.deployment, Name: in.name, Driver: in.driver,
		ID: in.id, Addr: in.addr, Template: in.hash, PID: in.pid, StartedAt: in.startedAt,
		Routable:      v.routable(),
		State:         v.state(),
		ScoringPath:   in.plan.Scoring.Path,
		OpenAPIPath:   in.plan.OpenAPIPath,
		MaxConcurrent: in.plan.MaxConcurrentPerInstance,
		Restarts:      v.restarts,
		LastProbe:     v.lastProbeError,
		LastProbeAt:   v.lastProbeAt,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cfg.Store.PutInstance(ctx, row); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("record instance state", "instance", in.id, "state", row.State, "err", err)
	}
	r.cfg.OnChange()
}

// stopAsync takes an instance out of routing at once (its stored row says
// Stopping, not routable, before OnChange returns), then drains and stops
// it in the background.
func (r *Reconciler) stopAsync(ds *depState, in *instance, why string) {
	in.mu.Lock()
	if in.stopping {
		in.mu.Unlock()
		return
	}
	in.stopping, in.ready = true, false
	in.mu.Unlock()
	r.persist(in)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx := context.Background()
		r.drain(in)
		in.cancel()
		if err := r.cfg.Driver.Stop(ctx, in.id, r.cfg.StopGrace); err != nil && !errors.Is(err, driver.ErrNotFound) {
			r.log.Error("stop instance", "instance", in.id, "err", err)
		}
		_ = r.cfg.Store.DeleteInstance(ctx, in.endpoint, in.deployment, in.name)
		r.mu.Lock()
		if ds.instances[in.name] == in {
			delete(ds.instances, in.name)
		}
		r.mu.Unlock()
		r.event(in.endpoint, in.deployment, in.name, "Normal", "Stopped", "Stopped instance "+in.name+": "+why)
		r.enqueue(in.endpoint, in.deployment)
	}()
}

// drain waits until no gateway may still send a request to the instance
// (none lists it, none has a request in flight on it), at most the request
// timeout and a second.
func (r *Reconciler) drain(in *instance) {
	if r.cfg.InFlight == nil {
		return
	}
	deadline := time.Now().Add(in.plan.RequestTimeout + time.Second)
	for time.Now().Before(deadline) && r.cfg.InFlight(in.endpoint, in.deployment, in.name) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// stopAll stops every instance of ds and returns how many are still
// running or stopping.
func (r *Reconciler) stopAll(ds *depState, why string) int {
	n := 0
	for _, in := range r.instancesOf(ds) {
		n++
		r.stopAsync(ds, in, why)
	}
	return n
}

func (r *Reconciler) succeed(ctx context.Context, d *store.Deployment) {
	gen := d.Generation
	was := d.State
	_, err := r.cfg.Store.UpdateDeployment(ctx, d.Endpoint, d.Name, func(x *store.Deployment) error {
		if x.Generation != gen || (x.State != store.StateCreating && x.State != store.StateUpdating) {
			return errStale
		}
		x.State, x.Reason, x.ObservedGeneration = store.StateSucceeded, "", gen
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			r.log.Error("mark deployment succeeded", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
		}
		return
	}
	d.State = store.StateSucceeded
	r.cfg.OnChange() // the routing table now follows the new plan's settings
	verb := "created"
	if was == store.StateUpdating {
		verb = "updated"
	}
	r.event(d.Endpoint, d.Name, "", "Normal", "Succeeded", "deployment "+verb+": all instances ready")
}

var errStale = errors.New("stale generation")

// fail marks the deployment Failed with a terminal reason and stops the
// instances of the failing plan (hash; "" means every instance).
func (r *Reconciler) fail(ctx context.Context, d *store.Deployment, ds *depState, hash string, why *reason.Reason) {
	gen := d.Generation
	text := why.Error()
	_, err := r.cfg.Store.UpdateDeployment(ctx, d.Endpoint, d.Name, func(x *store.Deployment) error {
		if x.Generation != gen || x.State == store.StateDeleting {
			return errStale
		}
		x.State, x.Reason, x.ObservedGeneration = store.StateFailed, text, gen
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			r.log.Error("mark deployment failed", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
		}
		return
	}
	d.State, d.ObservedGeneration = store.StateFailed, gen
	r.event(d.Endpoint, d.Name, "", "Warning", "Failed", text)
	for _, in := range r.instancesOf(ds) {
		if hash == "" || in.hash == hash {
			r.stopAsync(ds, in, "deployment failed")
		}
	}
}

// event records a lifecycle event in the store and the server log.
func (r *Reconciler) event(endpoint, deployment, inst, typ, why, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.cfg.Store.AppendEvent(ctx, store.Event{
		Endpoint: endpoint, Deployment: deployment, Instance: inst, Type: typ, Reason: why, Message: msg,
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("record event", "err", err)
	}
	lvl := slog.LevelInfo
	if typ == "Warning" {
		lvl = slog.LevelWarn
	}
	r.log.Log(ctx, lvl, msg, "endpoint", endpoint, "deployment", deployment, "instance", inst, "reason", why)
}
