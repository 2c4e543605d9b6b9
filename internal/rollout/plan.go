// Package rollout is plumbline's progressive rollout: a deployment's share
// of an endpoint's live traffic grows in steps (optionally after a shadow
// step, where it gets mirrored copies and its answers are compared with
// the live ones), each step lasting at least its bake time and judged, once
// it has enough requests, by gates on the figures every gateway measured: a
// breach returns the traffic to where it was at once (RolledBack, with the
// gate and the figures in the reason); too few requests make the step wait,
// never revert. Everything a rollout is lives in the store, so a restart of
// the server (or a new leader) carries on where it was.
//
// The Controller runs on the leader only. Start, Pause, Resume and Abort
// are the API's; View and Compare present rollouts and comparisons.
//
// This package must not import the gateway, the API server or the
// reconciler.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/figures"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// Defaults of a rollout plan.
var (
	DefaultSteps = []int{10, 25, 50, 100}
)

const (
	DefaultBakeSeconds              = 60
	DefaultMinRequests              = 100
	DefaultMaxErrorRate             = 0.01
	DefaultMaxLatencyRatio          = 1.5
	DefaultMinAgreement             = 0.95
	DefaultMaxContractViolationRate = 0.01
)

// Step kinds.
const (
	StepShadow = "shadow"
	StepLive   = "live"
)

// Step is one step of a plan.
type Step struct {
	Kind    string `json:"kind"`
	Percent int    `json:"percent"`
}

// Plan is a rollout's plan, as kept in store.Rollout.Plan.
type Plan struct {
	Steps       []Step        `json:"steps"`
	BakeSeconds int           `json:"bake_time"`
	MinRequests int           `json:"min_requests"`
	Gates       figures.Gates `json:"gates"`
}

// NewPlan builds a plan from the deployment's plumbline.rollout (nil: none)
// with the request's values over it, defaults filling the rest. A mistake
// is a spec error naming the field.
func NewPlan(yaml *spec.RolloutSettings, req api.RolloutRequest) (Plan, error) {
	s := spec.RolloutSettings{}
	if yaml != nil {
		s = *yaml
	}
	if req.Steps != nil {
		s.Steps = req.Steps
	}
	over := func(dst **int, v *int) {
		if v != nil {
			*dst = v
		}
	}
	overF := func(dst **float64, v *float64) {
		if v != nil {
			*dst = v
		}
	}
	over(&s.ShadowPercent, req.ShadowPercent)
	over(&s.BakeTime, req.BakeTime)
	over(&s.MinRequests, req.MinRequests)
	overF(&s.MaxErrorRate, req.MaxErrorRate)
	overF(&s.MaxLatencyRatio, req.MaxLatencyRatio)
	overF(&s.MinAgreement, req.MinAgreement)
	overF(&s.MaxContractViolationRate, req.MaxContractViolationRate)
	if err := spec.ValidateRollout(&s, ""); err != nil {
		return Plan{}, err
	}
	p := Plan{
		BakeSeconds: intOr(s.BakeTime, DefaultBakeSeconds),
		MinRequests: intOr(s.MinRequests, DefaultMinRequests),
		Gates: figures.Gates{
			MaxErrorRate:             floatOr(s.MaxErrorRate, DefaultMaxErrorRate),
			MaxLatencyRatio:          floatOr(s.MaxLatencyRatio, DefaultMaxLatencyRatio),
			MinAgreement:             floatOr(s.MinAgreement, DefaultMinAgreement),
			MaxContractViolationRate: floatOr(s.MaxContractViolationRate, DefaultMaxContractViolationRate),
		},
	}
	if v := intOr(s.ShadowPercent, 0); v > 0 {
		p.Steps = append(p.Steps, Step{Kind: StepShadow, Percent: v})
	}
	steps := s.Steps
	if steps == nil {
		steps = DefaultSteps
	}
	for _, v := range steps {
		p.Steps = append(p.Steps, Step{Kind: StepLive, Percent: v})
	}
	return p, nil
}

func intOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

func floatOr(p *float64, d float64) float64 {
	if p == nil {
		return d
	}
	return *p
}

// decodePlan reads a stored plan.
func decodePlan(b []byte) (Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("rollout plan: %w", err)
	}
	if len(p.Steps) == 0 {
		return p, errors.New("rollout plan has no steps")
	}
	return p, nil
}

// String is the plan in a line: "shadow 10 % → 25 → 50 → 100 %, 60 s and
// 100 requests a step".
func (p Plan) String() string {
	var parts []string
	for _, s := range p.Steps {
		if s.Kind == StepShadow {
			parts = append(parts, fmt.Sprintf("shadow %d %%", s.Percent))
		} else {
			parts = append(parts, fmt.Sprintf("%d %%", s.Percent))
		}
	}
	return fmt.Sprintf("%s, %d s and %d requests a step", strings.Join(parts, " → "), p.BakeSeconds, p.MinRequests)
}

// stepName names step i for messages: "step 2 of 4 (25 %)".
func (p Plan) stepName(i int) string {
	if i < 0 || i >= len(p.Steps) {
		return fmt.Sprintf("step %d", i+1)
	}
	s := p.Steps[i]
	kind := ""
	if s.Kind == StepShadow {
		kind = "shadow "
	}
	return fmt.Sprintf("step %d of %d (%s%d %%)", i+1, len(p.Steps), kind, s.Percent)
}

// StepRules are what the data plane enforces for a running rollout's
// current step.
type StepRules struct {
	Kind        string
	Percent     int
	MinRequests int
	Gates       figures.Gates
}

// CurrentStep reads a rollout's current step from its stored plan.
func CurrentStep(r store.Rollout) (StepRules, error) {
	p, err := decodePlan(r.Plan)
	if err != nil {
		return StepRules{}, err
	}
	if r.Step < 0 || r.Step >= len(p.Steps) {
		return StepRules{}, fmt.Errorf("rollout %d: step %d of %d", r.ID, r.Step, len(p.Steps))
	}
	s := p.Steps[r.Step]
	return StepRules{Kind: s.Kind, Percent: s.Percent, MinRequests: p.MinRequests, Gates: p.Gates}, nil
}
