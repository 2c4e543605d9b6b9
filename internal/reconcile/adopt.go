package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// adopt takes back the instances a driver re-adopted at start (containers
// that outlived a killed server): those whose template is what their
// deployment runs now (its current plan, or the last plan that succeeded
// while an update failed) are monitored again like instances this run
// started; the others are stopped.
func (r *Reconciler) adopt(ctx context.Context, adopted []driver.Status) {
	for _, st := range adopted {
		plan, hash, ok := r.adoptablePlan(ctx, st)
		if !ok {
			r.log.Info("stopping an instance of a previous run that is no longer wanted", "instance", st.ID, "template", st.Template)
			if err := r.cfg.Driver.Stop(ctx, st.ID, r.cfg.StopGrace); err != nil && !errors.Is(err, driver.ErrNotFound) {
				r.log.Error("stop instance of a previous run", "instance", st.ID, "err", err)
			}
			if ep, dep, name, ok := splitID(st.ID); ok {
				_ = r.cfg.Store.DeleteInstance(ctx, ep, dep, name)
			}
			continue
		}
		_, _, name, _ := splitID(st.ID)
		mctx, cancel := context.WithCancel(r.life)
		started := st.StartedAt
		if started.IsZero() {
			started = time.Now()
		}
		in := &instance{
			endpoint: plan.Endpoint, deployment: plan.Deployment, name: name, id: st.ID,
			hash: hash, plan: plan, addr: st.Addr, startedAt: started, cancel: cancel,
		}
		ds := r.state(plan.Endpoint, plan.Deployment)
		r.mu.Lock()
		ds.instances[name] = in
		r.mu.Unlock()
		_ = r.cfg.Store.PutInstance(ctx, store.Instance{
			Endpoint: plan.Endpoint, Deployment: plan.Deployment, Name: name, Driver: r.cfg.Driver.Name(),
			Data: []byte(fmt.Sprintf(`{"id":%q,"addr":%q,"pid":%d,"template":%q}`, st.ID, st.Addr, st.PID, hash)),
		})
		r.event(plan.Endpoint, plan.Deployment, name, "Normal", "Adopted", "Adopted instance "+name+" left running by the previous server at "+st.Addr)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.monitor(mctx, in)
		}()
	}
}

// adoptablePlan is the plan an adopted instance still runs, if its
// deployment wants it.
func (r *Reconciler) adoptablePlan(ctx context.Context, st driver.Status) (*resolve.Plan, string, bool) {
	ep, dep, _, ok := splitID(st.ID)
	if !ok || st.Template == "" || st.Addr == "" {
		return nil, "", false
	}
	d, err := r.cfg.Store.GetDeployment(ctx, ep, dep)
	if err != nil || d.State == store.StateDeleting {
		return nil, "", false
	}
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		return nil, "", false
	}
	if rec.Plan.TemplateMatches(st.Template) && d.State != store.StateFailed {
		return rec.Plan, rec.Plan.TemplateHash(), true
	}
	if prev := rec.Previous; prev != nil && prev.Plan != nil && prev.Plan.TemplateMatches(st.Template) {
		return prev.Plan, prev.Plan.TemplateHash(), true
	}
	return nil, "", false
}

// splitID splits "<endpoint>.<deployment>.<instance>" (names have no dots).
func splitID(id string) (endpoint, deployment, name string, ok bool) {
	parts := strings.Split(id, ".")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
