package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// Problem is a request the current state refuses: Conflict (409) when it
// is the state's fault (a rollout already runs, the deployment is not
// ready), else a bad request (400). Its message says what to do.
type Problem struct {
	Conflict bool
	NotFound bool
	Msg      string
}

func (p *Problem) Error() string { return p.Msg }

func conflictf(format string, args ...any) error {
	return &Problem{Conflict: true, Msg: fmt.Sprintf(format, args...)}
}

func badf(format string, args ...any) error { return &Problem{Msg: fmt.Sprintf(format, args...)} }

// Ops are the rollout operations the API offers.
type Ops struct {
	Store store.Store
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Start starts a progressive rollout of deployment name: the first step's
// traffic is set in the same transaction that stores the rollout.
func (o *Ops) Start(ctx context.Context, endpoint, name string, req api.RolloutRequest) (store.Rollout, error) {
	d, err := o.Store.GetDeployment(ctx, endpoint, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Rollout{}, &Problem{NotFound: true, Msg: fmt.Sprintf("endpoint %s has no deployment %s", endpoint, name)}
	}
	if err != nil {
		return store.Rollout{}, err
	}
	if d.State != store.StateSucceeded {
		return store.Rollout{}, conflictf("deployment %s is %s: a rollout starts once it is Succeeded (see online-deployment show --name %s --endpoint-name %s)", name, d.State, name, endpoint)
	}
	settings, err := rolloutSettings(d)
	if err != nil {
		return store.Rollout{}, err
	}
	plan, err := NewPlan(settings, req)
	if err != nil {
		return store.Rollout{}, badf("%v", err)
	}
	deps, err := o.Store.ListDeployments(ctx, endpoint)
	if err != nil {
		return store.Rollout{}, err
	}
	planJSON, _ := json.Marshal(plan)
	now := o.now()
	r := store.Rollout{Endpoint: endpoint, Deployment: name, Plan: planJSON, State: store.RolloutRunning, StepStartedAt: now}
	out, ep, err := o.Store.CreateRollout(ctx, r, func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		if e.State == store.StateDeleting {
			return nil, conflictf("endpoint %s is being deleted", endpoint)
		}
		r.Baseline, r.BaselineMirror = nonZero(e.Traffic), nonZero(e.Mirror)
		if sum(without(r.Baseline, name)) == 0 {
			return nil, conflictf("endpoint %s has no live traffic on another deployment to move from (traffic: %s); give the deployment that serves now its traffic first, or send everything to %s with: plumbline online-endpoint update --name %s --traffic \"%s=100\"",
				endpoint, Format(e.Traffic), name, endpoint, name)
		}
		for m, pct := range r.BaselineMirror {
			if m != name && pct > 0 && plan.Steps[0].Kind == StepShadow {
				return nil, conflictf("endpoint %s mirrors %d %% of its traffic to %s and an endpoint mirrors to one deployment only; stop that mirror first (online-endpoint update --name %s --mirror-traffic \"%s=0\") or roll out without a shadow step", endpoint, pct, m, endpoint, m)
			}
		}
		e.Traffic, e.Mirror = stepTraffic(plan, 0, r)
		return &store.TrafficChange{Cause: fmt.Sprintf("rollout of %s started: %s", name, plan.stepName(0)), Entries: Entries(e.Traffic, e.Mirror, deps)}, nil
	})
	if errors.Is(err, store.ErrExists) {
		act, _ := o.Store.ListRollouts(ctx, store.RolloutFilter{Endpoint: endpoint, ActiveOnly: true})
		who := "another deployment"
		if len(act) > 0 {
			who = act[0].Deployment
		}
		return store.Rollout{}, conflictf("endpoint %s already has a rollout of %s in progress; see it with: plumbline online-deployment rollout status --name %s --endpoint-name %s (abort it with rollout abort)", endpoint, who, who, endpoint)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Rollout{}, &Problem{NotFound: true, Msg: fmt.Sprintf("endpoint %s not found", endpoint)}
	}
	if err != nil {
		return store.Rollout{}, err
	}
	o.event(ctx, out, "Normal", "RolloutStarted", fmt.Sprintf("rollout %d started: %s; now %s: traffic %s%s", out.ID, plan, plan.stepName(0), Format(ep.Traffic), mirrorNote(ep.Mirror)))
	return out, nil
}

func mirrorNote(m map[string]int) string {
	if sum(m) == 0 {
		return ""
	}
	return ", mirror " + Format(m)
}

// rolloutSettings reads the deployment document's plumbline.rollout.
func rolloutSettings(d store.Deployment) (*spec.RolloutSettings, error) {
	rec, err := resolve.DecodeRecord(d.Spec)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: stored record: %w", d.Name, err)
	}
	var doc spec.Deployment
	if len(rec.Document) > 0 {
		if err := json.Unmarshal(rec.Document, &doc); err != nil {
			return nil, fmt.Errorf("deployment %s: stored document: %w", d.Name, err)
		}
	}
	if doc.Plumbline == nil {
		return nil, nil
	}
	return doc.Plumbline.Rollout, nil
}

// Active returns the deployment's active rollout, or a NotFound problem.
func (o *Ops) Active(ctx context.Context, endpoint, name string) (store.Rollout, error) {
	rs, err := o.Store.ListRollouts(ctx, store.RolloutFilter{Endpoint: endpoint, Deployment: name, ActiveOnly: true})
	if err != nil {
		return store.Rollout{}, err
	}
	if len(rs) == 0 {
		return store.Rollout{}, &Problem{NotFound: true, Msg: fmt.Sprintf("deployment %s of endpoint %s has no rollout in progress", name, endpoint)}
	}
	return rs[0], nil
}

// Latest returns the deployment's newest rollout, or a NotFound problem.
func (o *Ops) Latest(ctx context.Context, endpoint, name string) (store.Rollout, error) {
	rs, err := o.Store.ListRollouts(ctx, store.RolloutFilter{Endpoint: endpoint, Deployment: name, Limit: 1})
	if err != nil {
		return store.Rollout{}, err
	}
	if len(rs) == 0 {
		return store.Rollout{}, &Problem{NotFound: true, Msg: fmt.Sprintf("deployment %s of endpoint %s has never been rolled out; start with: plumbline online-deployment rollout --name %s --endpoint-name %s", name, endpoint, name, endpoint)}
	}
	return rs[0], nil
}

// Pause holds a running rollout at its current step: traffic stays as it
// is and no gate is judged until Resume.
func (o *Ops) Pause(ctx context.Context, endpoint, name string) (store.Rollout, error) {
	return o.transition(ctx, endpoint, name, "RolloutPaused", func(r *store.Rollout, e *store.Endpoint, p Plan) (*store.TrafficChange, string, error) {
		if r.State != store.RolloutRunning {
			return nil, "", conflictf("the rollout of %s is %s, not Running", name, r.State)
		}
		r.State, r.Reason = store.RolloutPaused, "paused by a user"
		return nil, fmt.Sprintf("rollout %d paused at %s", r.ID, p.stepName(r.Step)), nil
	})
}

// Resume carries on a paused rollout; the current step's bake time starts
// again (its requests so far still count).
func (o *Ops) Resume(ctx context.Context, endpoint, name string) (store.Rollout, error) {
	now := o.now()
	return o.transition(ctx, endpoint, name, "RolloutResumed", func(r *store.Rollout, e *store.Endpoint, p Plan) (*store.TrafficChange, string, error) {
		if r.State != store.RolloutPaused {
			return nil, "", conflictf("the rollout of %s is %s, not Paused", name, r.State)
		}
		r.State, r.Reason, r.StepStartedAt = store.RolloutRunning, "", now
		return nil, fmt.Sprintf("rollout %d resumed at %s", r.ID, p.stepName(r.Step)), nil
	})
}

// Abort ends an active rollout and returns the traffic to where it was
// when the rollout started.
func (o *Ops) Abort(ctx context.Context, endpoint, name string) (store.Rollout, error) {
	deps, err := o.Store.ListDeployments(ctx, endpoint)
	if err != nil {
		return store.Rollout{}, err
	}
	now := o.now()
	return o.transition(ctx, endpoint, name, "RolloutAborted", func(r *store.Rollout, e *store.Endpoint, p Plan) (*store.TrafficChange, string, error) {
		if !store.RolloutActive(r.State) {
			return nil, "", conflictf("the rollout of %s is %s already", name, r.State)
		}
		why := fmt.Sprintf("aborted by a user at %s", p.stepName(r.Step))
		r.State, r.Reason, r.FinishedAt = store.RolloutAborted, why, now
		e.Traffic, e.Mirror = copyMap(r.Baseline), copyMap(r.BaselineMirror)
		return &store.TrafficChange{Cause: fmt.Sprintf("rollout %d of %s %s", r.ID, name, why), Entries: Entries(e.Traffic, e.Mirror, deps)},
			fmt.Sprintf("rollout %d %s; traffic back to %s", r.ID, why, Format(e.Traffic)), nil
	})
}

// transition applies fn to the deployment's active rollout.
func (o *Ops) transition(ctx context.Context, endpoint, name, reason string, fn func(*store.Rollout, *store.Endpoint, Plan) (*store.TrafficChange, string, error)) (store.Rollout, error) {
	act, err := o.Active(ctx, endpoint, name)
	if err != nil {
		return store.Rollout{}, err
	}
	var msg string
	out, _, err := o.Store.UpdateRollout(ctx, act.ID, func(r *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		p, err := decodePlan(r.Plan)
		if err != nil {
			return nil, err
		}
		var c *store.TrafficChange
		c, msg, err = fn(r, e, p)
		return c, err
	})
	if err != nil {
		return store.Rollout{}, err
	}
	typ := "Normal"
	if reason == "RolloutAborted" {
		typ = "Warning"
	}
	o.event(ctx, out, typ, reason, msg)
	return out, nil
}

func (o *Ops) event(ctx context.Context, r store.Rollout, typ, reason, msg string) {
	_, _ = o.Store.AppendEvent(ctx, store.Event{Endpoint: r.Endpoint, Deployment: r.Deployment, Type: typ, Reason: reason, Message: msg})
}

// stepTraffic is the traffic and mirror of step i of r's plan.
func stepTraffic(p Plan, i int, r *store.Rollout) (traffic, mirror map[string]int) {
	cand := r.Deployment
	mirror = without(r.BaselineMirror, cand)
	s := p.Steps[i]
	if s.Kind == StepShadow {
		// A deployment takes live or mirrored traffic, not both: during
		// the shadow step the others serve all of it.
		return Split(without(r.Baseline, cand), cand, 0), map[string]int{cand: s.Percent}
	}
	return Split(without(r.Baseline, cand), cand, s.Percent), mirror
}

// Split gives cand pct percent and shares the rest among base in
// proportion to its weights (largest remainders, so the total is 100).
func Split(base map[string]int, cand string, pct int) map[string]int {
	out := map[string]int{}
	if pct > 0 {
		out[cand] = pct
	}
	total := sum(base)
	rest := 100 - pct
	if total == 0 || rest <= 0 {
		return out
	}
	type share struct {
		name string
		rem  int
	}
	var shares []share
	given := 0
	for _, n := range slices.Sorted(maps.Keys(base)) {
		w := base[n]
		if w <= 0 {
			continue
		}
		v := w * rest / total
		out[n] = v
		given += v
		shares = append(shares, share{n, w * rest % total})
	}
	sort.SliceStable(shares, func(a, b int) bool { return shares[a].rem > shares[b].rem })
	for i := 0; given < rest && len(shares) > 0; i = (i + 1) % len(shares) {
		out[shares[i].name]++
		given++
	}
	for n, v := range out {
		if v == 0 {
			delete(out, n)
		}
	}
	return out
}

func without(m map[string]int, k string) map[string]int {
	out := map[string]int{}
	for n, v := range m {
		if n != k && v > 0 {
			out[n] = v
		}
	}
	return out
}

func nonZero(m map[string]int) map[string]int { return without(m, "") }

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Format writes a split as "blue=90 green=10" ("none" when empty).
func Format(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Entries describe what each deployment with traffic or mirror serves:
// its share and the model version, digest and code it runs.
func Entries(traffic, mirror map[string]int, deps []store.Deployment) []store.TrafficEntry {
	names := map[string]bool{}
	for n, v := range traffic {
		if v > 0 {
			names[n] = true
		}
	}
	for n, v := range mirror {
		if v > 0 {
			names[n] = true
		}
	}
	var out []store.TrafficEntry
	for _, n := range slices.Sorted(maps.Keys(names)) {
		e := store.TrafficEntry{Deployment: n, Traffic: traffic[n], Mirror: mirror[n]}
		for _, d := range deps {
			if d.Name != n {
				continue
			}
			if rec, err := resolve.DecodeRecord(d.Spec); err == nil && rec.Plan != nil {
				p := rec.Plan
				if d.State == store.StateFailed && rec.Previous != nil && rec.Previous.Plan != nil {
					p = rec.Previous.Plan // the last good version serves
				}
				if p.ModelName != "" {
					e.Model = p.ModelName + ":" + p.ModelVersion
				}
				e.ModelDigest, e.CodeDigest, e.TemplateHash = p.ModelDigest, p.CodeDigest, p.TemplateHash()
			}
		}
		out = append(out, e)
	}
	return out
}
