// Package reconcile makes deployments real: it compares each deployment's
// desired state (its resolved Plan and instance_count, in the store) with the
// instances a driver runs, and acts — start, probe, restart, scale, replace
// one at a time, drain and stop — until they agree.
//
// It is level-based and idempotent: every pass re-reads the store and the
// instances and decides from scratch; a missed notification only delays the
// next resync. User mistakes (a missing R package, a script that cannot
// start) are terminal: the deployment becomes Failed with a reason an Azure
// user recognises, and nothing is retried until the deployment changes.
//
// This package may import store, driver, resolve and plumber; it must not
// import the gateway or the API server. It tells the outside world that
// routing changed through Config.OnChange and answers Routes().
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
// container image, built or pulled) without holding up the pass: it reports
// false while the work goes on in the background, and is asked again on a
// later pass. A non-nil error is terminal for that plan; its text is the
// deployment's reason.
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
	// Sample is optional; nil skips deployments' sample requests.
	Sample SampleTester
	// Images is optional; nil means plans need no preparation (the
	// process driver).
	Images Preparer
	Logger *slog.Logger
	// OnChange is called (without locks held) whenever the set of routable
	// instances may have changed. An instance taken out of routing is
	// drained and stopped only after OnChange returns, so a synchronous
	// OnChange guarantees no new request reaches an instance being stopped.
	// Nil means no-op.
	OnChange func()
	// InFlight, if set, reports requests in flight on an instance; stopping
	// waits for it to reach zero (bounded by the request timeout) before
	// signalling the process.
	InFlight func(endpoint, deployment, instance string) int

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
// and run it with Start.
type Reconciler struct {
	cfg         Config
	log         *slog.Logger
	probeClient *http.Client
	kick        chan struct{}

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
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	life, end := context.WithCancel(context.Background())
	return &Reconciler{
		life: life, endOfLife: end,
		cfg:  cfg,
		log:  cfg.Logger,
		kick: make(chan struct{}, 1),
		deps: map[string]*depState{},
		probeClient: &http.Client{Transport: &http.Transport{
			DisableKeepAlives: true,
			Proxy:             nil,
		}},
	}
}

// Notify asks for a pass soon. It never blocks.
func (r *Reconciler) Notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Start recovers what a previous run left, then reconciles until ctx ends.
// On return every monitor has stopped; instances keep running (the next
// start's Recover deals with them) unless the deployments were deleted.
func (r *Reconciler) Start(ctx context.Context) error {
	if err := r.recover(ctx); err != nil {
		// Serving what can be served beats refusing to start; the driver
		// has logged which leftover it could not end.
		r.log.Error("recovering what a previous run left", "err", err)
	}
	t := time.NewTicker(r.cfg.Resync)
	defer t.Stop()
	defer r.wg.Wait()
	defer r.endOfLife()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-t.C:
		}
	}
}

// recover asks the driver what survived a previous run and forgets instance
// records of everything else.
func (r *Reconciler) recover(ctx context.Context) error {
	adopted, err := r.cfg.Driver.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover instances: %w", err)
	}
	// Re-adopted instances whose template the deployment still wants are
	// monitored again (adopt); the others are stopped there.
	keep := map[string]bool{}
	for _, st := range adopted {
		keep[st.ID] = true
	}
	recs, err := r.cfg.Store.ListInstances(ctx, "", "")
	if err != nil {
		return fmt.Errorf("recover instances: %w", err)
	}
	for _, rec := range recs {
		id := instanceID(rec.Endpoint, rec.Deployment, rec.Name)
		if keep[id] {
			continue // adopt decides
		}
		if err := r.cfg.Store.DeleteInstance(ctx, rec.Endpoint, rec.Deployment, rec.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("recover instances: %w", err)
		}
	}
	if len(recs) > 0 {
		r.log.Info("previous run's instances cleaned up", "records", len(recs), "adopted", len(adopted))
	}
	r.adopt(ctx, adopted)
	return nil
}

func instanceID(endpoint, deployment, name string) string {
	return endpoint + "." + deployment + "." + name
}

// pass reconciles every deployment once.
func (r *Reconciler) pass(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("reconcile pass panicked", "panic", p)
		}
	}()
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
	epDeleting := map[string]bool{}
	for _, e := range eps {
		epDeleting[e.Name] = e.State == store.StateDeleting
	}
	seen := map[string]bool{}
	remaining := map[string]int{}
	for i := range deps {
		d := &deps[i]
		seen[key(d.Endpoint, d.Name)] = true
		if !r.reconcileDeployment(ctx, d, epDeleting[d.Endpoint]) {
			remaining[d.Endpoint]++
		}
	}
	// Deployments that vanished from the store: stop what still runs.
	r.mu.Lock()
	var gone []*depState
	for k, ds := range r.deps {
		if !seen[k] {
			gone = append(gone, ds)
		}
	}
	r.mu.Unlock()
	for _, ds := range gone {
		if r.stopAll(ds, "deployment removed") == 0 {
			r.mu.Lock()
			delete(r.deps, key(ds.endpoint, ds.name))
			r.mu.Unlock()
		}
	}
	// Endpoints being deleted whose deployments are all gone.
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

// reconcileDeployment does one step for d. It reports whether the
// deployment is gone (deleted) after this step.
func (r *Reconciler) reconcileDeployment(ctx context.Context, d *store.Deployment, endpointDeleting bool) (gone bool) {
	ds := r.state(d.Endpoint, d.Name)

	if d.State == store.StateDeleting || endpointDeleting {
		if r.stopAll(ds, "deployment deleted") > 0 {
			return false
		}
		if err := r.cfg.Store.DeleteDeployment(ctx, d.Endpoint, d.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Error("delete deployment", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
			return false
		}
		r.mu.Lock()
		delete(r.deps, key(d.Endpoint, d.Name))
		r.mu.Unlock()
		r.log.Info("deployment deleted", "endpoint", d.Endpoint, "deployment", d.Name)
		r.cfg.OnChange()
		return true
	}

	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil || rec.Plan == nil {
		r.fail(ctx, d, ds, "", fmt.Sprintf("InvalidDeploymentSpec: stored deployment cannot be read: %v", err))
		return false
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
			case in.hash != prevHash || prev == nil:
				r.stopAsync(ds, in, "deployment failed")
			default:
				keep = append(keep, in)
			}
		}
		if prev != nil {
			if len(keep) < prev.InstanceCount {
				r.startOne(ctx, d, ds, prev, prevHash)
			} else if len(keep) > prev.InstanceCount {
				sortForRemoval(keep)
				r.stopAsync(ds, keep[0], "scaled in")
			}
		}
		return false
	}

	// Pre-start check, once per plan.
	if ds.checkedHash != hash {
		if failed := r.check(ctx, d, ds, plan, hash); failed {
			return false
		}
	}

	if r.reapExited(ctx, d, ds, hash, inProgress) {
		return false // failed
	}

	if inProgress {
		for _, in := range r.instancesOf(ds) {
			if v := in.view(); in.hash == hash && v.sampleFailed != "" && !v.stopping {
				r.fail(ctx, d, ds, hash, fmt.Sprintf("ResourceNotReady: instance %s did not answer the sample request (plumbline.sample_request) with a 2xx: %s", in.name, v.sampleFailed))
				return false
			}
		}
	}

	if inProgress && time.Now().After(ds.deadline) {
		r.fail(ctx, d, ds, hash, r.notReadyReason(ds, hash, plan))
		return false
	}

	var current, old []*instance
	readyCurrent, restarting := 0, 0
	currentNotReady := false
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		if v.restarting && in.hash == hash {
			restarting++ // its slot is taken until it is back
		}
		if v.stopping || v.exited {
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
	want := plan.InstanceCount

	switch {
	case len(old) == 0 && len(current)+restarting < want:
		for i := len(current) + restarting; i < want; i++ {
			if !r.startOne(ctx, d, ds, plan, hash) {
				break
			}
		}
	case len(old) == 0 && len(current) > want:
		extra := len(current) - want
		sortForRemoval(current)
		for _, in := range current[:extra] {
			r.stopAsync(ds, in, "scaled in")
		}
		r.event(d.Endpoint, d.Name, "", "Normal", "Scaled", fmt.Sprintf("scaled from %d to %d instances", len(current), want))
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
			r.startOne(ctx, d, ds, plan, hash)
		}
	}

	if inProgress && len(old) == 0 && len(current) == want && readyCurrent == want {
		r.succeed(ctx, d)
	}
	return false
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

// check runs the pre-start checks for a plan and reports whether the
// deployment failed.
func (r *Reconciler) check(ctx context.Context, d *store.Deployment, ds *depState, plan *resolve.Plan, hash string) (failed bool) {
	if r.cfg.Images != nil {
		ready, err := r.cfg.Images.Prepare(ctx, plan)
		if err != nil {
			if ctx.Err() == nil {
				r.fail(ctx, d, ds, hash, err.Error())
			}
			return true
		}
		if !ready {
			return true // building or pulling: the preparer notifies when done
		}
	}
	if r.cfg.Checker != nil {
		codeDir, err := r.codeDir(ctx, plan)
		if err != nil {
			r.fail(ctx, d, ds, hash, "BadArgument: "+err.Error())
			return true
		}
		warnings, err := r.cfg.Checker.Check(ctx, plan, codeDir)
		for _, w := range warnings {
			r.event(d.Endpoint, d.Name, "", "Warning", "Check", w)
		}
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			r.fail(ctx, d, ds, hash, err.Error())
			return true
		}
	}
	ds.checkedHash = hash
	// The startup deadline counts from when instances can start, not from
	// the beginning of a build.
	ds.deadline = time.Now().Add(r.startupDeadline(plan))
	return false
}

func (r *Reconciler) codeDir(ctx context.Context, p *resolve.Plan) (string, error) {
	if p.CodeDigest == "" {
		return "", nil
	}
	dir, err := r.cfg.Artifacts.Materialize(ctx, p.CodeDigest)
	if err != nil {
		return "", fmt.Errorf("code snapshot %s: %w", p.CodeDigest, err)
	}
	if p.CodeRoot != "" {
		dir += "/" + p.CodeRoot
	}
	return dir, nil
}

// instanceSpec builds the driver spec of one instance of plan.
func (r *Reconciler) instanceSpec(ctx context.Context, p *resolve.Plan, name string) (driver.InstanceSpec, error) {
	spec := driver.InstanceSpec{
		Template:    p.TemplateHash(),
		ID:          instanceID(p.Endpoint, p.Deployment, name),
		Endpoint:    p.Endpoint,
		Deployment:  p.Deployment,
		Instance:    name,
		Runtime:     p.Runtime,
		EntryScript: p.EntryScript,
		Command:     p.Command,
		Image:       p.Image,
		Port:        p.Scoring.Port,
		Env:         p.Env,
		CPU:         p.CPU,
		MemoryBytes: p.MemoryBytes,

		ModelName:      p.ModelName,
		ModelVersion:   p.ModelVersion,
		ModelMountPath: p.ModelMountPath,
	}
	if p.ModelDigest != "" {
		dir, err := r.cfg.Artifacts.Materialize(ctx, p.ModelDigest)
		if err != nil {
			return spec, fmt.Errorf("model %s:%s (%s): %w", p.ModelName, p.ModelVersion, p.ModelDigest, err)
		}
		spec.ModelDir = dir
	}
	dir, err := r.codeDir(ctx, p)
	if err != nil {
		return spec, err
	}
	spec.CodeDir = dir
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
// It reports whether an instance was started.
func (r *Reconciler) startOne(ctx context.Context, d *store.Deployment, ds *depState, plan *resolve.Plan, hash string) bool {
	r.mu.Lock()
	name := freeName(ds)
	wait := time.Until(ds.notBefore[name])
	r.mu.Unlock()
	if wait > 0 {
		time.AfterFunc(wait, r.Notify)
		return false
	}
	spec, err := r.instanceSpec(ctx, plan, name)
	if err != nil {
		r.fail(ctx, d, ds, hash, "BadArgument: "+err.Error())
		return false
	}
	st, err := r.cfg.Driver.Start(ctx, spec)
	if err != nil {
		var se *driver.StartError
		if errors.As(err, &se) {
			r.fail(ctx, d, ds, hash, "ResourceNotReady: "+se.Error())
			return false
		}
		if errors.Is(err, driver.ErrExists) {
			// A stale instance with this ID (e.g. left by a failed stop): remove it.
			_ = r.cfg.Driver.Stop(ctx, spec.ID, r.cfg.StopGrace)
		}
		r.event(d.Endpoint, d.Name, name, "Warning", "FailedStart", err.Error())
		r.backoff(ds, name)
		return false
	}
	mctx, cancel := context.WithCancel(r.life)
	in := &instance{
		endpoint: d.Endpoint, deployment: d.Name, name: name, id: spec.ID,
		hash: hash, plan: plan, addr: st.Addr, startedAt: time.Now(), cancel: cancel,
	}
	r.mu.Lock()
	ds.instances[name] = in
	restarted := ds.totalRestarts[name] > 0
	r.mu.Unlock()
	_ = r.cfg.Store.PutInstance(ctx, store.Instance{
		Endpoint: d.Endpoint, Deployment: d.Name, Name: name, Driver: r.cfg.Driver.Name(),
		Data: []byte(fmt.Sprintf(`{"id":%q,"addr":%q,"pid":%d,"template":%q}`, spec.ID, st.Addr, st.PID, hash)),
	})
	reason, msg := "Started", "Started instance "+name+" ("+string(plan.Runtime)+") at "+st.Addr
	if restarted {
		reason = "Restarted"
	}
	r.event(d.Endpoint, d.Name, name, "Normal", reason, msg)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.monitor(mctx, in)
	}()
	return true
}

func (r *Reconciler) backoff(ds *depState, name string) {
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
	time.AfterFunc(d, r.Notify)
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
			r.backoff(ds, in.name)
			if in.hash == hash && !v.everReady && inProgress {
				ds.crashes++
				if ds.crashes >= r.cfg.MaxStartupCrashes {
					r.fail(ctx, d, ds, hash, "ResourceNotReady: "+msg+lastLinesSuffix(lines))
					return true
				}
			}
		case v.livenessFailed:
			in.mu.Lock()
			in.restarting = true
			in.mu.Unlock()
			r.stopAsync(ds, in, "liveness probe failed; restarting")
			r.backoff(ds, in.name)
		}
	}
	return false
}

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
func (r *Reconciler) notReadyReason(ds *depState, hash string, p *resolve.Plan) string {
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		if in.hash == hash && !v.ready {
			msg := fmt.Sprintf("ResourceNotReady: instance %s did not become ready within %s (readiness probe %s %s)",
				in.name, r.startupDeadline(p), p.Readiness.Path, orDash(v.lastProbeError))
			return msg + lastLinesSuffix(r.lastLines(in.id, 10))
		}
	}
	return fmt.Sprintf("ResourceNotReady: the deployment did not become ready within %s", r.startupDeadline(p))
}

func orDash(s string) string {
	if s == "" {
		return "never answered"
	}
	return s
}

// stopAsync takes an instance out of routing at once, then drains and stops
// it in the background.
func (r *Reconciler) stopAsync(ds *depState, in *instance, why string) {
	in.mu.Lock()
	if in.stopping {
		in.mu.Unlock()
		return
	}
	in.stopping, in.ready = true, false
	in.mu.Unlock()
	r.cfg.OnChange()
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
		r.Notify()
	}()
}

// drain waits until the gateway has no request in flight on the instance,
// at most the request timeout.
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

// fail marks the deployment Failed with reason and stops the instances of
// the failing plan (hash; "" means every instance).
func (r *Reconciler) fail(ctx context.Context, d *store.Deployment, ds *depState, hash, reason string) {
	gen := d.Generation
	_, err := r.cfg.Store.UpdateDeployment(ctx, d.Endpoint, d.Name, func(x *store.Deployment) error {
		if x.Generation != gen || x.State == store.StateDeleting {
			return errStale
		}
		x.State, x.Reason, x.ObservedGeneration = store.StateFailed, reason, gen
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			r.log.Error("mark deployment failed", "endpoint", d.Endpoint, "deployment", d.Name, "err", err)
		}
		return
	}
	d.State, d.ObservedGeneration = store.StateFailed, gen
	r.event(d.Endpoint, d.Name, "", "Warning", "Failed", reason)
	for _, in := range r.instancesOf(ds) {
		if hash == "" || in.hash == hash {
			r.stopAsync(ds, in, "deployment failed")
		}
	}
}

// event records a lifecycle event in the store and the server log.
func (r *Reconciler) event(endpoint, deployment, inst, typ, reason, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.cfg.Store.AppendEvent(ctx, store.Event{
		Endpoint: endpoint, Deployment: deployment, Instance: inst, Type: typ, Reason: reason, Message: msg,
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("record event", "err", err)
	}
	lvl := slog.LevelInfo
	if typ == "Warning" {
		lvl = slog.LevelWarn
	}
	r.log.Log(ctx, lvl, msg, "endpoint", endpoint, "deployment", deployment, "instance", inst, "reason", reason)
}
