package store

import (
	"context"
	"encoding/json"
	"time"
)

// Rollout states.
const (
	RolloutRunning    = "Running"
	RolloutPaused     = "Paused"
	RolloutSucceeded  = "Succeeded"
	RolloutRolledBack = "RolledBack"
	RolloutAborted    = "Aborted"
)

// RolloutActive reports whether a rollout in state s still owns its
// endpoint's traffic (Running or Paused).
func RolloutActive(s string) bool { return s == RolloutRunning || s == RolloutPaused }

// Rollout is a progressive rollout of one deployment of an endpoint. At
// most one rollout per endpoint is active at a time.
type Rollout struct {
	ID         int64 // assigned by the store, increasing
	Endpoint   string
	Deployment string
	// Plan is the rollout's plan (steps, bake time, gates) as JSON; the
	// store does not read it.
	Plan   json.RawMessage
	State  string
	Reason string
	// Step is the index of the current step in the plan; StepStartedAt
	// when it began (or resumed); Epoch the endpoint's Generation once the
	// step's traffic was set: figures of epochs from Epoch on are the
	// step's.
	Step          int
	StepStartedAt time.Time
	Epoch         int64
	// Baseline and BaselineMirror are the endpoint's traffic when the
	// rollout started, where a rollback returns it.
	Baseline       map[string]int
	BaselineMirror map[string]int
	// Data is the controller's own notes (JSON); nil means none.
	Data       json.RawMessage
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time // zero while active
}

// RolloutFilter selects rollouts; zero fields match everything.
type RolloutFilter struct {
	Endpoint   string
	Deployment string
	ActiveOnly bool
	// Limit keeps the newest Limit rollouts; 0 = no limit.
	Limit int
}

// TrafficEntry is what one deployment served in a TrafficChange.
type TrafficEntry struct {
	Deployment   string `json:"deployment"`
	Traffic      int    `json:"traffic"`
	Mirror       int    `json:"mirror,omitempty"`
	Model        string `json:"model,omitempty"` // name:version
	ModelDigest  string `json:"model_digest,omitempty"`
	CodeDigest   string `json:"code_digest,omitempty"`
	TemplateHash string `json:"template,omitempty"`
}

// TrafficChange is one entry of an endpoint's traffic history: from Time
// on, these deployments (with these models) served these shares.
type TrafficChange struct {
	ID         int64 // assigned by the store, increasing
	Endpoint   string
	Time       time.Time
	Generation int64 // the endpoint's generation after the change
	RolloutID  int64 // 0 when the change was not a rollout's
	// Cause says who changed it and why ("online-endpoint update",
	// "rollout 3: step 2 of 4 (25 %)", "rollout 3 rolled back: …").
	Cause   string
	Entries []TrafficEntry
}

// Stats is one gateway's cumulative figures for one endpoint, traffic
// epoch, kind and subject (see gateway.Measured).
type Stats struct {
	Source   string // the gateway process that measured them
	Endpoint string
	Epoch    int64
	Kind     string
	Subject  string
	Figures  json.RawMessage
	// UpdatedAt is set by the store on every put.
	UpdatedAt time.Time
}

// DiffSample is a sampled disagreeing pair of a shadow comparison, its
// bodies redacted (JSON of gateway.DiffSample's fields).
type DiffSample struct {
	ID       int64 // assigned by the store, increasing
	Endpoint string
	Epoch    int64
	Kind     string
	Subject  string // "live>shadow"
	Time     time.Time
	Body     json.RawMessage
}

// Rollouts is the safe-rollout part of the Store: rollouts, the traffic
// history, the figures gateways measure and sampled diffs.
type Rollouts interface {
	// CreateRollout stores r (ID, times assigned) and applies fn to it and
	// to its endpoint, all in one transaction: fn sets the first step's
	// traffic on the endpoint and may return a history entry, whose
	// Generation the store fills in. It fails with ErrExists when the
	// endpoint already has an active rollout, ErrNotFound without the
	// endpoint. Only the endpoint's Traffic and Mirror may change.
	CreateRollout(ctx context.Context, r Rollout, fn func(*Rollout, *Endpoint) (*TrafficChange, error)) (Rollout, Endpoint, error)
	// UpdateRollout reads rollout id and its endpoint, locked, calls fn,
	// and writes both (and the history entry fn returns) in one
	// transaction. fn's error aborts and is returned unwrapped. Only the
	// endpoint's Traffic and Mirror may change; a change increments its
	// Generation, which r.Epoch may then take (the store sets Epoch to
	// the new Generation when fn changed the traffic and left Epoch).
	UpdateRollout(ctx context.Context, id int64, fn func(*Rollout, *Endpoint) (*TrafficChange, error)) (Rollout, Endpoint, error)
	GetRollout(ctx context.Context, id int64) (Rollout, error)
	// ListRollouts lists rollouts by ID, oldest first.
	ListRollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error)

	// AppendTrafficChange stores c (ID and, if zero, Time set).
	// ErrNotFound if the endpoint does not exist.
	AppendTrafficChange(ctx context.Context, c TrafficChange) (TrafficChange, error)
	// ListTrafficChanges lists an endpoint's history oldest first; limit
	// keeps the newest (0: all); rolloutID > 0 keeps that rollout's.
	ListTrafficChanges(ctx context.Context, endpoint string, rolloutID int64, limit int) ([]TrafficChange, error)

	// PutStats creates or replaces each row (by source, endpoint, epoch,
	// kind and subject). It does not change the routing version.
	PutStats(ctx context.Context, rows []Stats) error
	// ListStats lists an endpoint's rows of epochs ≥ minEpoch.
	ListStats(ctx context.Context, endpoint string, minEpoch int64) ([]Stats, error)
	// DeleteStats removes rows not updated since before, and returns how
	// many.
	DeleteStats(ctx context.Context, before time.Time) (int64, error)

	// AppendDiffSamples stores samples, keeping the newest keep per
	// endpoint, kind and subject.
	AppendDiffSamples(ctx context.Context, samples []DiffSample, keep int) error
	// ListDiffSamples lists an endpoint's samples of epochs ≥ minEpoch,
	// newest first, at most limit (0: all).
	ListDiffSamples(ctx context.Context, endpoint string, minEpoch int64, limit int) ([]DiffSample, error)
}
