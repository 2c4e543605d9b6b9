package rollout

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/figures"
	"github.com/plumbline/plumbline/internal/store"
)

// Figure kinds, as gateways write them (gateway.KindDeployment…).
const (
	kindDeployment = "deployment"
	kindMirror     = "mirror"
	kindReplay     = "replay"
)

// Collected are the figures of every gateway, added up.
type Collected struct {
	Deployments map[string]*figures.Deployment
	// Pairs by kind, then subject ("live>shadow").
	Pairs map[string]map[string]*figures.Pair
	// Tripped says, per deployment, which gateway saw a gate breached over
	// its own sample, and why ("" when none did).
	Tripped map[string]string
	// Since is when the oldest row was last written (zero without rows).
	Since time.Time
}

// Collect adds up stats rows.
func Collect(rows []store.Stats) (*Collected, error) {
	c := &Collected{Deployments: map[string]*figures.Deployment{}, Pairs: map[string]map[string]*figures.Pair{}, Tripped: map[string]string{}}
	for _, r := range rows {
		switch r.Kind {
		case kindDeployment:
			var f figures.Deployment
			if err := json.Unmarshal(r.Figures, &f); err != nil {
				return nil, fmt.Errorf("figures of %s/%s from %s: %w", r.Endpoint, r.Subject, r.Source, err)
			}
			d := c.Deployments[r.Subject]
			if d == nil {
				d = &figures.Deployment{}
				c.Deployments[r.Subject] = d
			}
			if f.Tripped != "" && c.Tripped[r.Subject] == "" {
				c.Tripped[r.Subject] = fmt.Sprintf("gateway %s: %s", r.Source, f.Tripped)
			}
			f.Tripped = ""
			d.Merge(&f)
		case kindMirror, kindReplay:
			var f figures.Pair
			if err := json.Unmarshal(r.Figures, &f); err != nil {
				return nil, fmt.Errorf("figures of %s/%s from %s: %w", r.Endpoint, r.Subject, r.Source, err)
			}
			m := c.Pairs[r.Kind]
			if m == nil {
				m = map[string]*figures.Pair{}
				c.Pairs[r.Kind] = m
			}
			p := m[r.Subject]
			if p == nil {
				p = &figures.Pair{}
				m[r.Subject] = p
			}
			p.Merge(&f)
		}
	}
	return c, nil
}

// shadowPair merges the mirror comparisons whose shadow is cand.
func (c *Collected) shadowPair(cand string) *figures.Pair {
	out := &figures.Pair{}
	for subj, p := range c.Pairs[kindMirror] {
		if _, shadow, ok := strings.Cut(subj, ">"); ok && shadow == cand {
			out.Merge(p)
		}
	}
	return out
}

// notes are the controller's notes kept in store.Rollout.Data.
type notes struct {
	// BaselineP99 (seconds) is the live deployments' p99 in the last step
	// where they answered enough requests: the latency gate's reference
	// when they answer too few (the 100 % step).
	BaselineP99 float64 `json:"baseline_p99,omitempty"`
}

func readNotes(b []byte) notes {
	var n notes
	if len(b) > 0 {
		_ = json.Unmarshal(b, &n)
	}
	return n
}

// verdict is the judgement of a rollout's current step.
type verdict struct {
	figs api.RolloutFigures
	// enough: the step has its minimum of requests; baked: its bake time
	// has passed; breach: a gate is breached (the reason).
	enough, baked bool
	breach        string
	// baseP99 is the baseline's p99 in this step when it answered enough
	// requests (0 otherwise).
	baseP99 float64
}

// judge judges the current step of r from the collected figures.
func judge(p Plan, r *store.Rollout, c *Collected, now time.Time) verdict {
	var v verdict
	if r.Step < 0 || r.Step >= len(p.Steps) {
		return v
	}
	step := p.Steps[r.Step]
	min := int64(p.MinRequests)
	elapsed := now.Sub(r.StepStartedAt)
	bake := time.Duration(p.BakeSeconds) * time.Second
	v.baked = elapsed >= bake
	if step.Kind == StepShadow {
		pair := c.shadowPair(r.Deployment)
		n := pair.ShadowRequests + pair.ShadowContractViolations
		v.figs = api.RolloutFigures{Requests: n, Errors: pair.ShadowErrors, ErrorRate: ratio(pair.ShadowErrors, pair.ShadowRequests),
			ContractViolations: pair.ShadowContractViolations, Predictions: pair.Predictions}
		if pair.ShadowLatency.Count() > 0 {
			v.figs.P99Ms = msPtr(pair.ShadowLatency.Quantile(figures.LatencyQuantile))
			v.figs.BaselineP99Ms = msPtr(pair.LiveLatency.Quantile(figures.LatencyQuantile))
			if b := pair.LiveLatency.Quantile(figures.LatencyQuantile); b > 0 {
				r := pair.ShadowLatency.Quantile(figures.LatencyQuantile) / b
				v.figs.LatencyRatio = &r
			}
		}
		if pair.Predictions > 0 {
			a := pair.Agreement()
			v.figs.Agreement = &a
		}
		v.enough = n >= min
		if v.enough {
			v.breach = p.Gates.Shadow(pair)
		}
		if pair.LiveLatency.Count() >= min {
			v.baseP99 = pair.LiveLatency.Quantile(figures.LatencyQuantile)
		}
	} else {
		cand := c.Deployments[r.Deployment]
		if cand == nil {
			cand = &figures.Deployment{}
		}
		base := &figures.Deployment{}
		for name, f := range c.Deployments {
			if name != r.Deployment {
				base.Merge(f)
			}
		}
		ref := readNotes(r.Data).BaselineP99
		v.figs = api.RolloutFigures{Requests: cand.Requests, Errors: cand.Errors, ErrorRate: cand.ErrorRate(), ContractViolations: cand.ContractViolations}
		if cand.Latency.Count() > 0 {
			p99 := cand.Latency.Quantile(figures.LatencyQuantile)
			v.figs.P99Ms = msPtr(p99)
			b := ref
			if base.Requests >= min {
				b = base.Latency.Quantile(figures.LatencyQuantile)
			}
			if b > 0 {
				v.figs.BaselineP99Ms = msPtr(b)
				r := p99 / b
				v.figs.LatencyRatio = &r
			}
		}
		if base.Requests >= min {
			v.baseP99 = base.Latency.Quantile(figures.LatencyQuantile)
		}
		v.enough = cand.Requests >= min
		if why := c.Tripped[r.Deployment]; why != "" {
			v.breach = why
		} else if v.enough {
			v.breach = p.Gates.Live(cand, base, ref, min)
		}
	}
	switch {
	case v.breach != "":
		v.figs.Breach = v.breach
	case !v.enough:
		v.figs.Waiting = fmt.Sprintf("%d more requests (%d of %d)", min-v.figs.Requests, v.figs.Requests, min)
	case !v.baked:
		left := int64((bake - elapsed + time.Second - 1) / time.Second)
		v.figs.Waiting = fmt.Sprintf("bake time: %d s left", left)
	}
	return v
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func msPtr(sec float64) *float64 {
	v := float64(int64(sec*1e6+0.5)) / 1000
	return &v
}

// pairView presents one comparison.
func pairView(kind, subject string, p *figures.Pair) api.PairComparison {
	live, shadow, _ := strings.Cut(subject, ">")
	ms := func(s float64) float64 { return float64(int64(s*1e6+0.5)) / 1000 }
	out := api.PairComparison{
		Kind: kind, Live: live, Shadow: shadow,
		Pairs: p.Pairs, PairsAgreed: p.PairsAgreed, Incomparable: p.Incomparable,
		Predictions: p.Predictions, Agreed: p.Agreed, Agreement: p.Agreement(),
		Deltas: p.Deltas.Count(), DeltaMean: p.Deltas.Mean(), DeltaP50: p.Deltas.Quantile(0.5), DeltaP99: p.Deltas.Quantile(0.99), DeltaMax: p.Deltas.Max(),
		Classes:      p.Classes,
		LiveRequests: p.LiveRequests, ShadowRequests: p.ShadowRequests,
		LiveP50Ms: ms(p.LiveLatency.Quantile(0.5)), LiveP99Ms: ms(p.LiveLatency.Quantile(0.99)),
		ShadowP50Ms: ms(p.ShadowLatency.Quantile(0.5)), ShadowP99Ms: ms(p.ShadowLatency.Quantile(0.99)),
		LiveErrors: p.LiveErrors, ShadowErrors: p.ShadowErrors,
		LiveErrorRate: ratio(p.LiveErrors, p.LiveRequests), ShadowErrorRate: p.ShadowErrorRate(),
		ShadowContractViolations: p.ShadowContractViolations,
	}
	for _, f := range p.Flips() {
		out.Flips = append(out.Flips, api.Flip{Live: f.Live, Shadow: f.Shadow, Count: f.Count})
	}
	return out
}

// PairViews presents every comparison of c, mirror first, by subject.
func (c *Collected) PairViews() []api.PairComparison {
	var out []api.PairComparison
	for _, kind := range []string{kindMirror, kindReplay} {
		subjects := make([]string, 0, len(c.Pairs[kind]))
		for s := range c.Pairs[kind] {
			subjects = append(subjects, s)
		}
		sort.Strings(subjects)
		for _, s := range subjects {
			out = append(out, pairView(kind, s, c.Pairs[kind][s]))
		}
	}
	return out
}
