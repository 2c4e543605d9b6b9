package rollout

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// View presents r: its plan, state, the current step's figures (while
// active) and its traffic history.
func (o *Ops) View(ctx context.Context, r store.Rollout, withHistory bool) (api.Rollout, error) {
	p, err := decodePlan(r.Plan)
	if err != nil {
		return api.Rollout{}, err
	}
	out := api.Rollout{
		ID: r.ID, Endpoint: r.Endpoint, Deployment: r.Deployment, State: r.State, Reason: r.Reason,
		Step: r.Step, StepStartedAt: r.StepStartedAt, BakeTimeSeconds: p.BakeSeconds, MinRequests: p.MinRequests,
		Gates: api.RolloutGates{MaxErrorRate: p.Gates.MaxErrorRate, MaxLatencyRatio: p.Gates.MaxLatencyRatio,
			MinAgreement: p.Gates.MinAgreement, MaxContractViolationRate: p.Gates.MaxContractViolationRate},
		Baseline:  r.Baseline,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt,
	}
	if out.Baseline == nil {
		out.Baseline = map[string]int{}
	}
	for _, s := range p.Steps {
		out.Steps = append(out.Steps, api.RolloutStep{Kind: s.Kind, Percent: s.Percent})
	}
	if r.Step >= 0 && r.Step < len(p.Steps) {
		out.Percent, out.StepKind = p.Steps[r.Step].Percent, p.Steps[r.Step].Kind
	}
	if store.RolloutActive(r.State) {
		rows, err := o.Store.ListStats(ctx, r.Endpoint, r.Epoch)
		if err != nil {
			return api.Rollout{}, err
		}
		col, err := Collect(rows)
		if err != nil {
			return api.Rollout{}, err
		}
		v := judge(p, &r, col, o.now())
		if r.State == store.RolloutPaused {
			v.figs.Waiting = "paused: resume with online-deployment rollout resume"
		}
		out.Figures = &v.figs
	}
	if withHistory {
		hist, err := o.Store.ListTrafficChanges(ctx, r.Endpoint, r.ID, 0)
		if err != nil {
			return api.Rollout{}, err
		}
		out.History = HistoryView(hist)
	}
	return out, nil
}

// HistoryView presents traffic changes.
func HistoryView(hist []store.TrafficChange) []api.TrafficChange {
	out := make([]api.TrafficChange, 0, len(hist))
	for _, h := range hist {
		c := api.TrafficChange{ID: h.ID, Time: h.Time, Endpoint: h.Endpoint, Generation: h.Generation, RolloutID: h.RolloutID, Cause: h.Cause, Entries: []api.TrafficEntry{}}
		for _, e := range h.Entries {
			c.Entries = append(c.Entries, api.TrafficEntry{Deployment: e.Deployment, Traffic: e.Traffic, Mirror: e.Mirror, Model: e.Model, ModelDigest: e.ModelDigest, CodeDigest: e.CodeDigest})
		}
		out = append(out, c)
	}
	return out
}

// Compare presents an endpoint's comparisons: mirrored pairs and replays
// since its mirror was last set (or of every epoch, with all), with up to
// diffs sampled disagreements.
func (o *Ops) Compare(ctx context.Context, endpoint string, diffs int, all bool) (api.Comparison, error) {
	e, err := o.Store.GetEndpoint(ctx, endpoint)
	if err != nil {
		return api.Comparison{}, err
	}
	out := api.Comparison{Endpoint: e.Name, Mirror: nonZero(e.Mirror), Pairs: []api.PairComparison{}}
	var doc spec.Endpoint
	if json.Unmarshal(e.Spec, &doc) == nil && doc.Plumbline != nil && doc.Plumbline.Compare != nil {
		out.Path = doc.Plumbline.Compare.Path
	}
	if !all {
		hist, err := o.Store.ListTrafficChanges(ctx, endpoint, 0, 200)
		if err != nil {
			return api.Comparison{}, err
		}
		out.Epoch, out.Since = mirrorSince(hist, out.Mirror)
	}
	rows, err := o.Store.ListStats(ctx, endpoint, out.Epoch)
	if err != nil {
		return api.Comparison{}, err
	}
	col, err := Collect(rows)
	if err != nil {
		return api.Comparison{}, err
	}
	out.Pairs = append(out.Pairs, col.PairViews()...)
	if diffs > 0 {
		ds, err := o.Store.ListDiffSamples(ctx, endpoint, out.Epoch, diffs)
		if err != nil {
			return api.Comparison{}, err
		}
		for _, d := range ds {
			var body struct {
				Live, Shadow, RequestID, Diff     string
				Request, LiveAnswer, ShadowAnswer json.RawMessage
			}
			if json.Unmarshal(d.Body, &body) != nil {
				continue
			}
			out.Diffs = append(out.Diffs, api.DiffSample{Time: d.Time, Kind: d.Kind, Live: body.Live, Shadow: body.Shadow,
				RequestID: body.RequestID, Diff: body.Diff, Request: body.Request, LiveAnswer: body.LiveAnswer, ShadowAnswer: body.ShadowAnswer})
		}
	}
	return out, nil
}

// mirrorSince finds since when the endpoint's mirror has been what it is
// now, from its history (newest last): the generation and time of the
// oldest entry of that run. Without a mirror now, the last run that had
// one counts (its comparisons stay visible after a shadow step). Without
// history, 0.
func mirrorSince(hist []store.TrafficChange, mirror map[string]int) (int64, time.Time) {
	mirrorOf := func(c store.TrafficChange) map[string]int {
		m := map[string]int{}
		for _, e := range c.Entries {
			if e.Mirror > 0 {
				m[e.Deployment] = e.Mirror
			}
		}
		return m
	}
	i := len(hist) - 1
	if len(mirror) == 0 {
		for i >= 0 && len(mirrorOf(hist[i])) == 0 {
			i--
		}
		if i < 0 {
			return 0, time.Time{}
		}
		mirror = mirrorOf(hist[i])
	}
	var gen int64
	var at time.Time
	for ; i >= 0; i-- {
		if !maps.Equal(mirrorOf(hist[i]), mirror) {
			break
		}
		gen, at = hist[i].Generation, hist[i].Time
	}
	return gen, at
}
