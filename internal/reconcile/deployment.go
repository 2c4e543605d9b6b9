package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/reason"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

func (r *Reconciler) state(endpoint, name string) *depState {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key(endpoint, name)
	ds := r.deps[k]
	if ds == nil {
		ds = &depState{
			endpoint: endpoint, name: name,
			instances:     map[string]*instance{},
			restarts:      map[string]int{},
			notBefore:     map[string]time.Time{},
			totalRestarts: map[string]int{},
		}
		r.deps[k] = ds
	}
	return ds
}

// reconcileDeployment takes one step for d and says when to look again.
func (r *Reconciler) reconcileDeployment(ctx context.Context, d *store.Deployment, endpointDeleting bool) (time.Duration, error) {
	if pd, ok := r.cfg.Driver.(driver.DeploymentDriver); ok {
		return r.reconcilePlatform(ctx, d, pd, endpointDeleting)
	}
	ds := r.state(d.Endpoint, d.Name)

	if d.State == store.StateDeleting || endpointDeleting {
		if r.stopAll(ds, "deployment deleted") > 0 {
			return progressRequeue, nil
		}
		if err := r.cfg.Store.DeleteDeployment(ctx, d.Endpoint, d.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("delete deployment %s/%s: %w", d.Endpoint, d.Name, err)
		}
		r.mu.Lock()
		delete(r.deps, key(d.Endpoint, d.Name))
		r.mu.Unlock()
		r.log.Info("deployment deleted", "endpoint", d.Endpoint, "deployment", d.Name)
		r.cfg.OnChange()
		r.Notify() // its endpoint may be waiting for it to go
		return 0, nil
	}

	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		r.fail(ctx, d, ds, "", reason.Terminal(reason.InvalidDeploymentSpec, "stored deployment cannot be read: %v", err))
		return 0, nil
	}
	plan := rec.Plan
	hash := plan.TemplateHash()

	if ds.generation != d.Generation {
		ds.generation = d.Generation
		ds.crashes = 0
		ds.deadline = time.Now().Add(r.startupDeadline(plan))
		if ds.checkedHash != hash {
			ds.checkedHash = ""
		}
	}
	inProgress := d.State == store.StateCreating || d.State == store.StateUpdating

	// A failed generation stays failed until the deployment changes: its
	// instances are stopped, and the last version that succeeded (if any)
	// keeps serving — restarted after a crash or a server restart like any
	// healthy deployment.
	if d.State == store.StateFailed && d.ObservedGeneration == d.Generation {
		r.reapExited(ctx, d, ds, hash, false)
		var prev *resolve.Plan
		prevHash := ""
		if rec.Previous != nil && rec.Previous.Plan != nil {
			prev, prevHash = rec.Previous.Plan, rec.Previous.Plan.TemplateHash()
		}
		var keep []*instance
		for _, in := range r.instancesOf(ds) {
			v := in.view()
			switch {
			case v.stopping || v.exited:
			case in.hash != prevHash || prev == nil || v.parked:
				r.stopAsync(ds, in, "deployment failed")
			default:
				keep = append(keep, in)
			}
		}
		if prev != nil {
			want := r.want(d, prev, false)
			if len(keep) < want {
				if err := r.startOne(ctx, d, ds, prev, prevHash); err != nil {
					return 0, err
				}
				return progressRequeue, nil
			} else if len(keep) > want {
				sortForRemoval(keep)
				r.stopAsync(ds, keep[0], "scaled in")
			}
		}
		return 0, nil
	}

	// Pre-start check, once per plan.
	if ds.checkedHash != hash {
		failed, err := r.check(ctx, d, ds, plan, hash)
		if failed || err != nil {
			return 0, err
		}
	}

	if r.reapExited(ctx, d, ds, hash, inProgress) {
		return 0, nil // failed
	}

	if inProgress {
		for _, in := range r.instancesOf(ds) {
			if v := in.view(); in.hash == hash && v.sampleFailed != "" && !v.stopping {
				r.fail(ctx, d, ds, hash, reason.Terminal(reason.ResourceNotReady,
					"instance %s did not answer the sample request (plumbline.sample_request) with a 2xx: %s", in.name, v.sampleFailed))
				return 0, nil
			}
		}
	}

	if inProgress && time.Now().After(ds.deadline) {
		r.fail(ctx, d, ds, hash, r.notReadyReason(ds, hash, plan))
		return 0, nil
	}

	var current, old, parked []*instance
	readyCurrent, restarting := 0, 0
	currentNotReady := false
	parker, canPark := r.parker(plan)
	now := time.Now()
	var untilExpiry time.Duration // the soonest a parked instance stops
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		if v.restarting && in.hash == hash {
			restarting++ // its slot is taken until it is back
		}
		if v.stopping || v.exited {
			continue
		}
		if v.parked {
			switch {
			case in.hash != hash || !canPark:
				r.stopAsync(ds, in, "replaced by a new version")
			case now.Sub(v.parkedAt) >= plan.Autoscale.KeepLoaded:
				r.stopAsync(ds, in, fmt.Sprintf("parked for %s (keep_loaded_for): its loaded R session stops too", plan.Autoscale.KeepLoaded))
			default:
				parked = append(parked, in)
				if left := plan.Autoscale.KeepLoaded - now.Sub(v.parkedAt); untilExpiry == 0 || left < untilExpiry {
					untilExpiry = left
				}
			}
			continue
		}
		if in.hash == hash {
			current = append(current, in)
			if v.ready {
				readyCurrent++
			} else {
				currentNotReady = true
			}
		} else {
			old = append(old, in)
		}
	}
	want := r.want(d, plan, inProgress)

	switch {
	case len(old) == 0 && len(current)+restarting < want:
		for i := len(current) + restarting; i < want; i++ {
			if len(parked) > 0 {
				// A fork from a loaded session beats an R start-up.
				r.unparkAsync(ds, parked[0], parker, plan)
				parked = parked[1:]
				continue
			}
			if err := r.startOne(ctx, d, ds, plan, hash); err != nil {
				return 0, err
			}
		}
	case len(old) == 0 && len(current) > want:
		extra := len(current) - want
		sortForRemoval(current)
		why := "scaled in"
		if want == 0 {
			why = "scaled to zero"
		}
		for i, in := range current[:extra] {
			if want == 0 && canPark && i == extra-1 && len(parked) == 0 {
				// The last one (the best: ready, lowest index) keeps its
				// loaded session, with no worker, for keep_loaded_for.
				r.parkAsync(ds, in, parker)
				continue
			}
			r.stopAsync(ds, in, why)
		}
		if plan.Autoscale == nil {
			// (The autoscaler records its own decisions, with their reason.)
			r.event(d.Endpoint, d.Name, "", "Normal", "Scaled", fmt.Sprintf("scaled from %d to %d instances", len(current), want))
		}
	case len(old) > 0:
		// Rolling replacement, one at a time: surge a new instance, wait
		// until it is ready, then drain and stop one old instance.
		switch {
		case currentNotReady:
			// wait for the new instance
		case len(old)+len(current) > want:
			sortForRemoval(old)
			r.stopAsync(ds, old[0], "replaced by a new version")
		case len(current) < want:
			if err := r.startOne(ctx, d, ds, plan, hash); err != nil {
				return 0, err
			}
		}
	}

	if inProgress && len(old) == 0 && len(current) == want && readyCurrent == want {
		r.succeed(ctx, d)
		return 0, nil
	}
	if inProgress || len(old) > 0 || restarting > 0 {
		return progressRequeue, nil
	}
	return untilExpiry, nil
}

// want is how many instances of plan the deployment runs: the
// autoscaler's decision for an autoscaled plan (at least one while a new
// version rolls out: it must prove it starts), else the plan's count.
func (r *Reconciler) want(d *store.Deployment, plan *resolve.Plan, inProgress bool) int {
	if plan.Autoscale == nil || r.cfg.Scaler == nil {
		return plan.InstanceCount
	}
	n, ok := r.cfg.Scaler.Desired(d.Endpoint, d.Name)
	if !ok {
		n = plan.InstanceCount
	}
	n = min(max(n, plan.Autoscale.MinInstances), plan.Autoscale.MaxInstances)
	if inProgress {
		n = max(n, 1)
	}
	return n
}

// startupDeadline is how long a new plan may take to become ready: the
// readiness probe's initial delay plus period × failure threshold (Azure's
// own bound), at least MinStartupDeadline.
func (r *Reconciler) startupDeadline(p *resolve.Plan) time.Duration {
	rp := p.ReadinessProbe
	d := rp.InitialDelay + time.Duration(rp.FailureThreshold)*rp.Period
	if d < r.cfg.MinStartupDeadline {
		d = r.cfg.MinStartupDeadline
	}
	return d
}

func (r *Reconciler) instancesOf(ds *depState) []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*instance, 0, len(ds.instances))
	for _, in := range ds.instances {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return nameIndex(out[i].name) < nameIndex(out[j].name) })
	return out
}

// sortForRemoval orders instances so the best ones to remove come first:
// not ready before ready, then the highest index.
func sortForRemoval(ins []*instance) {
	sort.SliceStable(ins, func(i, j int) bool {
		ri, rj := ins[i].view().ready, ins[j].view().ready
		if ri != rj {
			return !ri
		}
		return nameIndex(ins[i].name) > nameIndex(ins[j].name)
	})
}

func nameIndex(name string) int {
	i := strings.LastIndexByte(name, '-')
	n, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return 1 << 30
	}
	return n
}

// check runs the pre-start checks for a plan. It reports whether the
// deployment failed (a terminal reason), or returns a transient error to
// retry.
func (r *Reconciler) check(ctx context.Context, d *store.Deployment, ds *depState, plan *resolve.Plan, hash string) (failed bool, err error) {
	if r.cfg.Images != nil {
		ready, err := r.cfg.Images.Prepare(ctx, plan)
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return r.failOrRetry(ctx, d, ds, hash, reason.Parse(err, reason.ResourceNotReady))
		}
		if !ready {
			return true, nil // building or pulling: the preparer notifies when done
		}
	}
	if r.cfg.Checker != nil {
		codeDir, err := r.codeDir(ctx, plan)
		if err != nil {
			return r.failOrRetry(ctx, d, ds, hash, err)
		}
		warnings, err := r.cfg.Checker.Check(ctx, plan, codeDir)
		for _, w := range warnings {
			r.event(d.Endpoint, d.Name, "", "Warning", "Check", w)
		}
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return r.failOrRetry(ctx, d, ds, hash, reason.Parse(err, reason.ResourceNotReady))
		}
	}
	ds.checkedHash = hash
	// The startup deadline counts from when instances can start, not from
	// the beginning of a build.
	ds.deadline = time.Now().Add(r.startupDeadline(plan))
	return false, nil
}

// failOrRetry fails the deployment for a terminal reason (true), or records
// a warning and returns the transient one as an error to retry with
// backoff.
func (r *Reconciler) failOrRetry(ctx context.Context, d *store.Deployment, ds *depState, hash string, err error) (bool, error) {
	why := reason.From(err, reason.BadArgument)
	if why.Transient {
		r.event(d.Endpoint, d.Name, "", "Warning", string(why.Code), why.Message+" (will retry)")
		return false, why
	}
	r.fail(ctx, d, ds, hash, why)
	return true, nil
}

func (r *Reconciler) codeDir(ctx context.Context, p *resolve.Plan) (string, error) {
	if p.CodeDigest == "" {
		return "", nil
	}
	dir, err := r.cfg.Artifacts.Materialize(ctx, p.CodeDigest)
	if err != nil {
		return "", reason.Transient(reason.ArtifactUnavailable, "code snapshot %s: %w", p.CodeDigest, err)
	}
	if p.CodeRoot != "" {
		dir += "/" + p.CodeRoot
	}
	return dir, nil
}

// planTemplate is what every instance of plan runs, as any driver is
// given it: the instance drivers add the instance's identity and host
// folders, a DeploymentDriver artifact references.
func planTemplate(p *resolve.Plan) driver.InstanceSpec {
	return driver.InstanceSpec{
		Template:       p.TemplateHash(),
		Endpoint:       p.Endpoint,
		Deployment:     p.Deployment,
		Runtime:        p.Runtime,
		EntryScript:    p.EntryScript,
		Command:        p.Command,
		Image:          p.Image,
		Port:           p.Scoring.Port,
		Env:            p.Env,
		CPU:            p.CPU,
		MemoryBytes:    p.MemoryBytes,
		ModelName:      p.ModelName,
		ModelVersion:   p.ModelVersion,
		ModelMountPath: p.ModelMountPath,
	}
}

// instanceSpec builds the driver spec of one instance of plan.
func (r *Reconciler) instanceSpec(ctx context.Context, p *resolve.Plan, name string) (driver.InstanceSpec, error) {
	spec := planTemplate(p)
	spec.ID = instanceID(p.Endpoint, p.Deployment, name)
	spec.Instance = name
	spec.RWorkers = p.RWorkers()
	// The storage-initializer step: each materialisation is an event, which
	// get-logs --container storage-initializer shows.
	if p.ModelDigest != "" {
		start := time.Now()
		dir, err := r.cfg.Artifacts.Materialize(ctx, p.ModelDigest)
		if err != nil {
			err = reason.Transient(reason.ArtifactUnavailable, "model %s:%s (%s): %w", p.ModelName, p.ModelVersion, p.ModelDigest, err)
			r.event(p.Endpoint, p.Deployment, name, "Warning", store.ReasonDownloadFailed, err.Error())
			return spec, err
		}
		spec.ModelDir = dir
		r.event(p.Endpoint, p.Deployment, name, "Normal", store.ReasonModelDownload,
			fmt.Sprintf("model %s:%s (%s) ready in %s", p.ModelName, p.ModelVersion, p.ModelDigest, time.Since(start).Round(10*time.Microsecond)))
	}
	start := time.Now()
	dir, err := r.codeDir(ctx, p)
	if err != nil {
		r.event(p.Endpoint, p.Deployment, name, "Warning", store.ReasonDownloadFailed, err.Error())
		return spec, err
	}
	spec.CodeDir = dir
	if p.CodeDigest != "" {
		r.event(p.Endpoint, p.Deployment, name, "Normal", store.ReasonCodeDownload,
			fmt.Sprintf("code snapshot %s ready in %s", p.CodeDigest, time.Since(start).Round(10*time.Microsecond)))
	}
	return spec, nil
}

// freeName is the lowest "<deployment>-<i>" not in use (also not by an
// instance still stopping).
func freeName(ds *depState) string {
	for i := 0; ; i++ {
		n := ds.name + "-" + strconv.Itoa(i)
		if _, used := ds.instances[n]; !used {
			return n
		}
	}
}

// startOne starts one instance of plan, honouring per-name restart backoff.
// A transient failure is returned, to retry the deployment with backoff; a
// terminal one fails the deployment.
func (r *Reconciler) startOne(ctx context.Context, d *store.Deployment, ds *depState, plan *resolve.Plan, hash string) error {
	r.mu.Lock()
	name := freeName(ds)
	wait := time.Until(ds.notBefore[name])
	r.mu.Unlock()
	if wait > 0 {
		r.queue.AddAfter(key(d.Endpoint, d.Name), wait)
		return nil
	}
	spec, err := r.instanceSpec(ctx, plan, name)
	if err != nil {
		_, err = r.failOrRetry(ctx, d, ds, hash, err)
		return err
	}
	if r.cfg.Fence != nil {
		if err := r.cfg.Fence(ctx); err != nil {
			return fmt.Errorf("not starting %s: %w", spec.ID, err)
		}
	}
	st, err := r.cfg.Driver.Start(ctx, spec)
	if err != nil {
		var se *driver.StartError
		if errors.As(err, &se) {
			r.fail(ctx, d, ds, hash, reason.Terminal(reason.ResourceNotReady, "%s", se.Error()))
			return nil
		}
		if errors.Is(err, driver.ErrExists) {
			// A stale instance with this ID (e.g. left by a failed stop): remove it.
			_ = r.cfg.Driver.Stop(ctx, spec.ID, r.cfg.StopGrace)
		}
		r.event(d.Endpoint, d.Name, name, "Warning", "FailedStart", err.Error())
		r.backoff(ds, d.Endpoint, d.Name, name)
		return nil
	}
	in := &instance{
		endpoint: d.Endpoint, deployment: d.Name, name: name, id: spec.ID, driver: r.cfg.Driver.Name(),
		hash: hash, plan: plan, addr: st.Addr, pid: st.PID, startedAt: time.Now(),
	}
	r.mu.Lock()
	ds.instances[name] = in
	restarted := ds.totalRestarts[name] > 0
	in.restarts = ds.totalRestarts[name]
	r.mu.Unlock()
	r.persist(in)
	why, msg := "Started", "Started instance "+name+" ("+string(plan.Runtime)+") at "+st.Addr
	if restarted {
		why = "Restarted"
	}
	r.event(d.Endpoint, d.Name, name, "Normal", why, msg)
	r.watch(in, false)
	return nil
}

func (r *Reconciler) backoff(ds *depState, endpoint, deployment, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := ds.restarts[name]
	d := time.Second << min(n, 10)
	if d > r.cfg.MaxBackoff {
		d = r.cfg.MaxBackoff
	}
	ds.restarts[name] = n + 1
	ds.totalRestarts[name]++
	ds.notBefore[name] = time.Now().Add(d)
	r.queue.AddAfter(key(endpoint, deployment), d)
}

// reapExited handles instances whose process ended or whose liveness probe
// failed: records the event, forgets them in the driver and schedules a
// restart with capped backoff. In a creation or update it counts crashes
// of the new plan and fails the deployment past MaxStartupCrashes; it then
// reports true.
func (r *Reconciler) reapExited(ctx context.Context, d *store.Deployment, ds *depState, hash string, inProgress bool) (failed bool) {
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		if v.stopping {
			continue
		}
		if v.ready && !v.readySince.IsZero() && time.Since(v.readySince) > time.Minute {
			r.mu.Lock()
			ds.restarts[in.name] = 0 // healthy for a while: reset the backoff
			r.mu.Unlock()
		}
		switch {
		case v.exited:
			lines := r.lastLines(in.id, 10)
			msg := fmt.Sprintf("instance %s exited with code %d", in.name, v.exitCode)
			// The driver's message may repeat "exited with code N"; keep
			// only what it adds (a signal, a port taken).
			detail := strings.TrimPrefix(v.exitMsg, fmt.Sprintf("exited with code %d", v.exitCode))
			if detail = strings.TrimPrefix(detail, "; "); detail != "" {
				msg += " (" + detail + ")"
			}
			r.event(d.Endpoint, d.Name, in.name, "Warning", "Exited", msg+lastLinesSuffix(lines))
			in.cancel()
			_ = r.cfg.Driver.Stop(ctx, in.id, r.cfg.StopGrace)
			_ = r.cfg.Store.DeleteInstance(ctx, d.Endpoint, d.Name, in.name)
			r.mu.Lock()
			delete(ds.instances, in.name)
			r.mu.Unlock()
			r.cfg.OnChange()
			r.backoff(ds, d.Endpoint, d.Name, in.name)
			if in.hash == hash && !v.everReady && inProgress {
				ds.crashes++
				if ds.crashes >= r.cfg.MaxStartupCrashes {
					r.fail(ctx, d, ds, hash, reason.Terminal(reason.ResourceNotReady, "%s%s", msg, lastLinesSuffix(lines)))
					return true
				}
			}
		case v.livenessFailed:
			in.mu.Lock()
			in.restarting = true
			in.mu.Unlock()
			r.stopAsync(ds, in, "liveness probe failed; restarting")
			r.backoff(ds, d.Endpoint, d.Name, in.name)
		}
	}
	return false
}
