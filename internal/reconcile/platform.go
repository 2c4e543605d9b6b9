package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/reason"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// DeploymentSpec is what a driver.DeploymentDriver (Kubernetes) is given
// for plan: the replicas' template with artifact references (digests)
// where the instance drivers get host folders, instance_count, Azure's
// probes on the inference_config routes, limits and requests, and a
// termination grace that lets a replica finish its longest request.
func DeploymentSpec(p *resolve.Plan) driver.DeploymentSpec {
	s := driver.DeploymentSpec{
		Endpoint:           p.Endpoint,
		Deployment:         p.Deployment,
		Template:           planTemplate(p),
		Replicas:           p.InstanceCount,
		Liveness:           platformProbe(p.Liveness, p.LivenessProbe),
		Readiness:          platformProbe(p.Readiness, p.ReadinessProbe),
		RequestCPU:         p.RequestCPU,
		RequestMemoryBytes: p.RequestMemoryBytes,
		TerminationGrace:   p.RequestTimeout + 5*time.Second,
	}
	if p.ModelDigest != "" {
		s.Model = &driver.Artifact{Digest: p.ModelDigest, Path: p.ModelPath}
	}
	if p.CodeDigest != "" {
		s.Code = &driver.Artifact{Digest: p.CodeDigest, Path: p.CodeRoot}
	}
	return s
}

func platformProbe(r resolve.Route, p resolve.Probe) driver.Probe {
	return driver.Probe{
		Path: r.Path, Port: r.Port,
		InitialDelay: p.InitialDelay, Period: p.Period, Timeout: p.Timeout,
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold,
	}
}

// platformPoll is how often a deployment on a DeploymentDriver is observed
// when nothing is in progress.
const platformPoll = 5 * time.Second

// reconcilePlatform takes one step for d on a driver whose platform runs
// whole deployments (Kubernetes): it applies the plan when the deployment's
// generation changed, observes the platform, mirrors the replicas into the
// store's instance rows (address, readiness, the plan's routes and limit),
// and maps the platform's state to the deployment's: Available →
// Succeeded, Failed → Failed with the platform's reason. The platform
// probes, restarts and rolls; plumbline does neither here.
func (r *Reconciler) reconcilePlatform(ctx context.Context, d *store.Deployment, pd driver.DeploymentDriver, endpointDeleting bool) (time.Duration, error) {
	ds := r.state(d.Endpoint, d.Name)
	if d.State == store.StateDeleting || endpointDeleting {
		if err := pd.DeleteDeployment(ctx, d.Endpoint, d.Name); err != nil {
			return 0, reason.Transient(reason.DriverBusy, "delete deployment %s/%s: %w", d.Endpoint, d.Name, err)
		}
		if err := r.cfg.Store.DeleteDeployment(ctx, d.Endpoint, d.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("delete deployment %s/%s: %w", d.Endpoint, d.Name, err)
		}
		r.mu.Lock()
		delete(r.deps, key(d.Endpoint, d.Name))
		r.mu.Unlock()
		r.log.Info("deployment deleted", "endpoint", d.Endpoint, "deployment", d.Name)
		r.cfg.OnChange()
		r.Notify()
		return 0, nil
	}
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		r.fail(ctx, d, ds, "", reason.Terminal(reason.InvalidDeploymentSpec, "stored deployment cannot be read: %v", err))
		return 0, nil
	}
	plan := rec.Plan
	failedNow := d.State == store.StateFailed && d.ObservedGeneration == d.Generation
	if ds.generation != d.Generation && !failedNow {
		// The platform keeps the last good version serving while a new one
		// rolls out (or fails to): applying is the whole update.
		if err := pd.ApplyDeployment(ctx, DeploymentSpec(plan)); err != nil {
			var se *driver.StartError
			if errors.As(err, &se) {
				r.fail(ctx, d, ds, "", reason.Terminal(reason.BadArgument, "%s", se.Reason))
				return 0, nil
			}
			return 0, reason.Transient(reason.DriverBusy, "apply deployment %s/%s: %w", d.Endpoint, d.Name, err)
		}
		ds.generation = d.Generation
		r.event(d.Endpoint, d.Name, "", "Normal", "Applied", fmt.Sprintf("applied to the %s driver: %d replica(s) of %s", r.cfg.Driver.Name(), plan.InstanceCount, plan.TemplateHash()))
	}
	st, err := pd.ObserveDeployment(ctx, d.Endpoint, d.Name)
	if errors.Is(err, driver.ErrNotFound) {
		ds.generation = 0 // removed behind plumbline's back: apply again
		return progressRequeue, nil
	}
	if err != nil {
		return 0, reason.Transient(reason.DriverBusy, "observe deployment %s/%s: %w", d.Endpoint, d.Name, err)
	}
	r.mirrorReplicas(ctx, d, plan, st)
	inProgress := d.State == store.StateCreating || d.State == store.StateUpdating
	switch {
	case st.State == driver.DeploymentAvailable && inProgress && st.Template == plan.TemplateHash():
		r.succeed(ctx, d)
	case st.State == driver.DeploymentFailed && inProgress && st.Template == plan.TemplateHash():
		r.fail(ctx, d, ds, "", reason.Terminal(reason.Code(st.Reason), "%s", st.Message))
	}
	if inProgress {
		return progressRequeue, nil
	}
	return platformPoll, nil
}

// mirrorReplicas writes the platform's replicas as the deployment's
// instance rows (the store's routing source reads them) and removes the
// rows of replicas that are gone.
func (r *Reconciler) mirrorReplicas(ctx context.Context, d *store.Deployment, plan *resolve.Plan, st driver.DeploymentStatus) {
	rows, err := r.cfg.Store.ListInstances(ctx, d.Endpoint, d.Name)
	if err != nil {
		r.log.Error("list instance rows", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
		return
	}
	old := make(map[string]store.Instance, len(rows))
	for _, row := range rows {
		old[row.Name] = row
	}
	changed := false
	for _, in := range st.Instances {
		state := store.InstanceStarting
		if in.Ready {
			state = store.InstanceReady
		}
		row := store.Instance{
			Endpoint: d.Endpoint, Deployment: d.Name, Name: in.Name, Driver: r.cfg.Driver.Name(),
			ID: in.ID, Addr: in.Addr, Template: in.Template, StartedAt: in.StartedAt,
			Routable: in.Ready && in.Addr != "", State: state, Restarts: in.Restarts, LastProbe: in.Message,
			ScoringPath: plan.Scoring.Path, OpenAPIPath: plan.OpenAPIPath, MaxConcurrent: plan.MaxConcurrentPerInstance,
		}
		delete(old, in.Name)
		if prev, ok := rows0(rows, in.Name); ok && prev.Addr == row.Addr && prev.Routable == row.Routable && prev.State == row.State &&
			prev.Template == row.Template && prev.Restarts == row.Restarts && prev.ScoringPath == row.ScoringPath && prev.MaxConcurrent == row.MaxConcurrent {
			continue
		}
		if err := r.cfg.Store.PutInstance(ctx, row); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("record replica", "instance", in.ID, "err", err)
		}
		changed = true
	}
	for name := range old {
		if err := r.cfg.Store.DeleteInstance(ctx, d.Endpoint, d.Name, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("remove replica row", "endpoint", d.Endpoint, "deployment", d.Name, "instance", name, "err", err)
		}
		changed = true
	}
	if changed {
		r.cfg.OnChange()
	}
}

func rows0(rows []store.Instance, name string) (store.Instance, bool) {
	for _, r := range rows {
		if r.Name == name {
			return r, true
		}
	}
	return store.Instance{}, false
}
