package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// recover asks the driver what a previous run left alive and keeps every
// instance that still runs a plan its deployment wants (the template hash
// matches the current plan, or the last version that succeeded while a
// newer one is in progress or failed): it is monitored again, routable at
// once if it was, under its old name, address and pid — a restart of the
// control plane costs no start-up. The driver's other survivors are
// stopped, and stored rows of instances that did not survive are removed.
func (r *Reconciler) recover(ctx context.Context) error {
	adopted, err := r.cfg.Driver.Recover(ctx)
	if err != nil {
		r.log.Error("recover instances", "err", err) // what it did adopt is still worth keeping
	}
	rows, lerr := r.cfg.Store.ListInstances(ctx, "", "")
	if lerr != nil {
		return errors.Join(err, fmt.Errorf("recover instances: %w", lerr))
	}
	byID := map[string]store.Instance{}
	for _, row := range rows {
		byID[instanceID(row.Endpoint, row.Deployment, row.Name)] = row
	}
	kept := map[string]bool{}
	for _, st := range adopted {
		if why := r.adopt(ctx, st, byID); why != "" {
			r.log.Info("stopping an instance of a previous run", "instance", st.ID, "pid", st.PID, "why", why)
			if err := r.cfg.Driver.Stop(ctx, st.ID, r.cfg.StopGrace); err != nil && !errors.Is(err, driver.ErrNotFound) {
				r.log.Error("stop instance of a previous run", "instance", st.ID, "err", err)
			}
			continue
		}
		kept[st.ID] = true
	}
	for id, row := range byID {
		if kept[id] {
			continue
		}
		if err := r.cfg.Store.DeleteInstance(ctx, row.Endpoint, row.Deployment, row.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("recover instances: %w", err)
		}
	}
	if len(rows) > 0 || len(adopted) > 0 {
		r.log.Info("previous run's instances recovered", "records", len(rows), "alive", len(adopted), "re-adopted", len(kept))
		r.cfg.OnChange()
	}
	return err
}

// adopt takes over one instance the driver re-adopted, or says why not.
func (r *Reconciler) adopt(ctx context.Context, st driver.Status, rows map[string]store.Instance) (whyNot string) {
	row, known := rows[st.ID]
	ep, dep, name := row.Endpoint, row.Deployment, row.Name
	if !known {
		parts := strings.SplitN(st.ID, ".", 3)
		if len(parts) != 3 {
			return "its ID names no deployment"
		}
		ep, dep, name = parts[0], parts[1], parts[2]
	}
	if st.State != driver.StateRunning && st.State != driver.StateStarting {
		return "it is not running"
	}
	d, err := r.cfg.Store.GetDeployment(ctx, ep, dep)
	if err != nil {
		return "its deployment is gone"
	}
	if d.State == store.StateDeleting {
		return "its deployment is being deleted"
	}
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		return "its deployment cannot be read"
	}
	var plan *resolve.Plan
	candidates := []*resolve.Plan{rec.Plan}
	if rec.Previous != nil && rec.Previous.Plan != nil {
		candidates = append(candidates, rec.Previous.Plan)
	}
	for _, p := range candidates {
		if p.TemplateMatches(st.Template) {
			plan = p
			break
		}
	}
	if plan == nil {
		return fmt.Sprintf("it runs template %q, which no version of the deployment wants", st.Template)
	}
	ds := r.state(ep, dep)
	in := &instance{
		endpoint: ep, deployment: dep, name: name, id: st.ID, driver: r.cfg.Driver.Name(),
		hash: plan.TemplateHash(), plan: plan, addr: st.Addr, pid: st.PID, startedAt: st.StartedAt,
	}
	if known {
		in.ready = row.Routable
		in.everReady = row.Routable || row.State == store.InstanceReady || row.State == store.InstanceUnready
		in.restarts = row.Restarts
		in.lastProbeError, in.lastProbeAt = row.LastProbe, row.LastProbeAt
	}
	r.mu.Lock()
	if _, taken := ds.instances[name]; taken {
		r.mu.Unlock()
		return "its name is taken"
	}
	ds.instances[name] = in
	ds.totalRestarts[name] = in.restarts
	if in.everReady && plan == rec.Plan && d.State == store.StateSucceeded {
		ds.checkedHash = in.hash // checked before it first started
	}
	r.mu.Unlock()
	r.persist(in)
	r.event(ep, dep, name, "Normal", "Adopted", fmt.Sprintf("Re-adopted instance %s (pid %d) at %s after a restart of plumbline", name, st.PID, st.Addr))
	r.watch(in, true)
	r.enqueue(ep, dep)
	return ""
}
