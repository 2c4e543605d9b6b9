package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

// Controller moves running rollouts along: every Interval it judges each
// running rollout's current step on the figures every gateway wrote, and
// rolls back, advances or waits. It keeps no state of its own: a new
// leader carries on where the last one was. Run it on the leader only.
type Controller struct {
	Store store.Store
	Log   *slog.Logger
	// Interval between two passes; zero means 250 ms.
	Interval time.Duration
	// Fence, if set, is asked before every change: a replica that lost the
	// leader lease changes nothing.
	Fence func(ctx context.Context) error
	// OnChange, if set, runs after a traffic change (this process's
	// gateway rebuilds its table at once).
	OnChange func()
	// Wake, if set, asks for a pass before Interval (a gateway saw a gate
	// breached).
	Wake <-chan struct{}
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// StatsTTL is how long gateway figures are kept after their last
	// write; zero means a day.
	StatsTTL time.Duration
}

// Start runs passes until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	every := c.Interval
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		c.pass(ctx)
		if time.Since(lastPrune) > 10*time.Minute {
			c.prune(ctx)
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.Wake:
		}
	}
}

func (c *Controller) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// pass judges every running rollout once.
func (c *Controller) pass(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			c.log().Error("rollout controller panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	rs, err := c.Store.ListRollouts(ctx, store.RolloutFilter{ActiveOnly: true})
	if err != nil {
		if ctx.Err() == nil {
			c.log().Warn("rollouts: list", "err", err)
		}
		return
	}
	for _, r := range rs {
		if r.State != store.RolloutRunning {
			continue
		}
		if err := c.Step(ctx, r); err != nil && ctx.Err() == nil {
			c.log().Warn("rollout: judge a step", "endpoint", r.Endpoint, "deployment", r.Deployment, "rollout", r.ID, "err", err)
		}
	}
}

// errStale: the rollout moved on since it was read; the next pass looks
// again.
var errStale = errors.New("rollout changed meanwhile")

// Step judges r's current step once and acts: roll back on a breach,
// advance (or finish) once the step has its requests and its bake time,
// else wait.
func (c *Controller) Step(ctx context.Context, r store.Rollout) error {
	p, err := decodePlan(r.Plan)
	if err != nil {
		return err
	}
	rows, err := c.Store.ListStats(ctx, r.Endpoint, r.Epoch)
	if err != nil {
		return err
	}
	col, err := Collect(rows)
	if err != nil {
		return err
	}
	now := c.now()
	v := judge(p, &r, col, now)
	switch {
	case v.breach != "":
		return c.rollBack(ctx, r, p, v)
	case v.enough && v.baked:
		return c.advance(ctx, r, p, v, now)
	}
	return nil
}

// rollBack returns the traffic to the rollout's baseline at once.
func (c *Controller) rollBack(ctx context.Context, r store.Rollout, p Plan, v verdict) error {
	if err := c.fence(ctx); err != nil {
		return err
	}
	deps, err := c.Store.ListDeployments(ctx, r.Endpoint)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("%s: %s", p.stepName(r.Step), v.breach)
	out, e, err := c.Store.UpdateRollout(ctx, r.ID, func(cur *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		if cur.State != store.RolloutRunning || cur.Step != r.Step {
			return nil, errStale
		}
		cur.State, cur.Reason, cur.FinishedAt = store.RolloutRolledBack, reason, c.now()
		e.Traffic, e.Mirror = copyMap(cur.Baseline), copyMap(cur.BaselineMirror)
		return &store.TrafficChange{Cause: fmt.Sprintf("rollout %d of %s rolled back at %s", cur.ID, cur.Deployment, reason), Entries: Entries(e.Traffic, e.Mirror, deps)}, nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return err
	}
	c.changed()
	c.log().Warn("rollout rolled back", "endpoint", r.Endpoint, "deployment", r.Deployment, "rollout", r.ID, "reason", reason, "traffic", Format(e.Traffic))
	c.event(ctx, out, "Warning", "RolloutRolledBack", fmt.Sprintf("rollout %d rolled back at %s; traffic back to %s%s", out.ID, reason, Format(e.Traffic), mirrorNote(e.Mirror)))
	return nil
}

// advance moves to the next step, or finishes after the last.
func (c *Controller) advance(ctx context.Context, r store.Rollout, p Plan, v verdict, now time.Time) error {
	if err := c.fence(ctx); err != nil {
		return err
	}
	deps, err := c.Store.ListDeployments(ctx, r.Endpoint)
	if err != nil {
		return err
	}
	last := r.Step+1 >= len(p.Steps)
	var msg string
	out, e, err := c.Store.UpdateRollout(ctx, r.ID, func(cur *store.Rollout, e *store.Endpoint) (*store.TrafficChange, error) {
		if cur.State != store.RolloutRunning || cur.Step != r.Step {
			return nil, errStale
		}
		passed := fmt.Sprintf("%s passed (%s)", p.stepName(cur.Step), summary(v))
		if v.baseP99 > 0 {
			n := readNotes(cur.Data)
			n.BaselineP99 = v.baseP99
			cur.Data, _ = json.Marshal(n)
		}
		if last {
			cur.State, cur.Reason, cur.FinishedAt = store.RolloutSucceeded, passed, now
			e.Traffic = map[string]int{cur.Deployment: 100}
			e.Mirror = without(cur.BaselineMirror, cur.Deployment)
			msg = fmt.Sprintf("rollout %d succeeded: %s; %s serves all the traffic", cur.ID, passed, cur.Deployment)
			return &store.TrafficChange{Cause: fmt.Sprintf("rollout %d of %s succeeded", cur.ID, cur.Deployment), Entries: Entries(e.Traffic, e.Mirror, deps)}, nil
		}
		cur.Step++
		cur.StepStartedAt = now
		cur.Reason = ""
		e.Traffic, e.Mirror = stepTraffic(p, cur.Step, cur)
		msg = fmt.Sprintf("rollout %d: %s; now %s: traffic %s%s", cur.ID, passed, p.stepName(cur.Step), Format(e.Traffic), mirrorNote(e.Mirror))
		return &store.TrafficChange{Cause: fmt.Sprintf("rollout %d of %s: %s", cur.ID, cur.Deployment, p.stepName(cur.Step)), Entries: Entries(e.Traffic, e.Mirror, deps)}, nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return err
	}
	c.changed()
	reason := "RolloutStep"
	if last {
		reason = "RolloutSucceeded"
	}
	c.log().Info(msg, "endpoint", r.Endpoint, "deployment", r.Deployment, "traffic", Format(e.Traffic))
	c.event(ctx, out, "Normal", reason, msg)
	return nil
}

// summary is a step's figures in a few words.
func summary(v verdict) string {
	f := v.figs
	s := fmt.Sprintf("%d requests, error rate %s", f.Requests, pctText(f.ErrorRate))
	if f.Agreement != nil {
		s += fmt.Sprintf(", agreement %s", pctText(*f.Agreement))
	}
	if f.LatencyRatio != nil {
		s += fmt.Sprintf(", p99 %.2f× the live deployments'", *f.LatencyRatio)
	}
	return s
}

func pctText(v float64) string {
	s := fmt.Sprintf("%.2f", v*100)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s + " %"
}

func (c *Controller) fence(ctx context.Context) error {
	if c.Fence == nil {
		return nil
	}
	return c.Fence(ctx)
}

func (c *Controller) changed() {
	if c.OnChange != nil {
		c.OnChange()
	}
}

func (c *Controller) event(ctx context.Context, r store.Rollout, typ, reason, msg string) {
	if _, err := c.Store.AppendEvent(ctx, store.Event{Endpoint: r.Endpoint, Deployment: r.Deployment, Type: typ, Reason: reason, Message: msg}); err != nil {
		c.log().Warn("rollout: record an event", "err", err)
	}
}

// prune removes gateway figures nobody wrote for StatsTTL.
func (c *Controller) prune(ctx context.Context) {
	ttl := c.StatsTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if n, err := c.Store.DeleteStats(ctx, time.Now().Add(-ttl)); err != nil {
		if ctx.Err() == nil {
			c.log().Warn("rollouts: prune old figures", "err", err)
		}
	} else if n > 0 {
		c.log().Info("rollouts: pruned old figures", "rows", n)
	}
}
