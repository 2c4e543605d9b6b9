package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// RolloutRequest starts a progressive rollout of a deployment. Nil fields
// take the deployment's plumbline.rollout value, then the default. The keys
// are those of plumbline.rollout in a deployment's YAML.
type RolloutRequest struct {
	Steps                    []int    `json:"steps,omitempty"`
	ShadowPercent            *int     `json:"shadow_percent,omitempty"`
	BakeTime                 *int     `json:"bake_time,omitempty"` // seconds
	MinRequests              *int     `json:"min_requests,omitempty"`
	MaxErrorRate             *float64 `json:"max_error_rate,omitempty"`
	MaxLatencyRatio          *float64 `json:"max_latency_ratio,omitempty"`
	MinAgreement             *float64 `json:"min_agreement,omitempty"`
	MaxContractViolationRate *float64 `json:"max_contract_violation_rate,omitempty"`
}

// RolloutStep is one step of a rollout's plan.
type RolloutStep struct {
	// Kind is "shadow" (the deployment gets mirrored copies) or "live".
	Kind    string `json:"kind"`
	Percent int    `json:"percent"`
}

// RolloutGates are a rollout's conditions (see plumbline.rollout).
type RolloutGates struct {
	MaxErrorRate             float64 `json:"max_error_rate"`
	MaxLatencyRatio          float64 `json:"max_latency_ratio"`
	MinAgreement             float64 `json:"min_agreement"`
	MaxContractViolationRate float64 `json:"max_contract_violation_rate"`
}

// RolloutFigures are the current step's figures, added up over every
// gateway.
type RolloutFigures struct {
	// Requests the deployment answered in this step (shadow step: the
	// mirrored copies), Errors among them, ContractViolations (422).
	Requests           int64    `json:"requests"`
	Errors             int64    `json:"errors"`
	ErrorRate          float64  `json:"error_rate"`
	ContractViolations int64    `json:"contract_violations"`
	P99Ms              *float64 `json:"p99_ms,omitempty"`
	// BaselineP99Ms is the live deployments' p99 it is compared with.
	BaselineP99Ms *float64 `json:"baseline_p99_ms,omitempty"`
	LatencyRatio  *float64 `json:"latency_ratio,omitempty"`
	// Agreement (shadow step) is the share of predictions that agree.
	Agreement   *float64 `json:"agreement,omitempty"`
	Predictions int64    `json:"predictions,omitempty"`
	// Waiting says what the step waits for ("" when nothing): requests
	// (inconclusive: a pause, never a revert) or the bake time.
	Waiting string `json:"waiting,omitempty"`
	// Breach is a gate breached that has not been acted on yet.
	Breach string `json:"breach,omitempty"`
}

// Rollout is a progressive rollout as `rollout status` prints it.
type Rollout struct {
	ID         int64  `json:"id"`
	Endpoint   string `json:"endpoint_name"`
	Deployment string `json:"name"`
	// State is Running, Paused, Succeeded, RolledBack or Aborted.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Step is the current step's index in Steps (0-based); Percent its
	// share.
	Step            int             `json:"step"`
	Steps           []RolloutStep   `json:"steps"`
	Percent         int             `json:"percent"`
	StepKind        string          `json:"step_kind"`
	StepStartedAt   time.Time       `json:"step_started_at,omitzero"`
	BakeTimeSeconds int             `json:"bake_time"`
	MinRequests     int             `json:"min_requests"`
	Gates           RolloutGates    `json:"gates"`
	Baseline        map[string]int  `json:"baseline"`
	Figures         *RolloutFigures `json:"figures,omitempty"`
	History         []TrafficChange `json:"history,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	FinishedAt      time.Time       `json:"finished_at,omitzero"`
}

// TrafficEntry is what one deployment served in a traffic change.
type TrafficEntry struct {
	Deployment  string `json:"deployment"`
	Traffic     int    `json:"traffic"`
	Mirror      int    `json:"mirror,omitempty"`
	Model       string `json:"model,omitempty"`
	ModelDigest string `json:"model_digest,omitempty"`
	CodeDigest  string `json:"code_digest,omitempty"`
}

// TrafficChange is one entry of an endpoint's traffic history.
type TrafficChange struct {
	ID         int64          `json:"id"`
	Time       time.Time      `json:"time"`
	Endpoint   string         `json:"endpoint_name"`
	Generation int64          `json:"generation"`
	RolloutID  int64          `json:"rollout_id,omitempty"`
	Cause      string         `json:"cause"`
	Entries    []TrafficEntry `json:"entries"`
}

// Flip is one cell off the diagonal of a class-flip matrix.
type Flip struct {
	Live   string `json:"live"`
	Shadow string `json:"shadow"`
	Count  int64  `json:"count"`
}

// PairComparison compares a live deployment's answers with another's:
// its mirror target (kind mirror) or replayed captured requests (replay).
type PairComparison struct {
	Kind   string `json:"kind"`
	Live   string `json:"live"`
	Shadow string `json:"shadow"`
	// Pairs compared, those that agreed in every prediction, and those
	// that could not be compared (an error or a non-JSON answer).
	Pairs        int64 `json:"pairs"`
	PairsAgreed  int64 `json:"pairs_agreed"`
	Incomparable int64 `json:"incomparable"`
	// Predictions compared and the share that agreed.
	Predictions int64   `json:"predictions"`
	Agreed      int64   `json:"agreed"`
	Agreement   float64 `json:"agreement"`
	// |Δ| of the numbers compared.
	Deltas    int64   `json:"deltas"`
	DeltaMean float64 `json:"delta_mean"`
	DeltaP50  float64 `json:"delta_p50"`
	DeltaP99  float64 `json:"delta_p99"`
	DeltaMax  float64 `json:"delta_max"`
	// Flips are the class changes, most frequent first; Classes the whole
	// matrix (live label → shadow label → count).
	Flips   []Flip                      `json:"flips,omitempty"`
	Classes map[string]map[string]int64 `json:"classes,omitempty"`
	// Latency (ms) and errors of both sides over the same requests.
	LiveRequests             int64   `json:"live_requests"`
	ShadowRequests           int64   `json:"shadow_requests"`
	LiveP50Ms                float64 `json:"live_p50_ms"`
	LiveP99Ms                float64 `json:"live_p99_ms"`
	ShadowP50Ms              float64 `json:"shadow_p50_ms"`
	ShadowP99Ms              float64 `json:"shadow_p99_ms"`
	LiveErrors               int64   `json:"live_errors"`
	ShadowErrors             int64   `json:"shadow_errors"`
	LiveErrorRate            float64 `json:"live_error_rate"`
	ShadowErrorRate          float64 `json:"shadow_error_rate"`
	ShadowContractViolations int64   `json:"shadow_contract_violations,omitempty"`
}

// DiffSample is a sampled disagreeing pair, redacted with the capture
// rules of both deployments.
type DiffSample struct {
	Time         time.Time       `json:"time"`
	Kind         string          `json:"kind"`
	Live         string          `json:"live"`
	Shadow       string          `json:"shadow"`
	RequestID    string          `json:"request_id"`
	Diff         string          `json:"diff"`
	Request      json.RawMessage `json:"request"`
	LiveAnswer   json.RawMessage `json:"live_answer"`
	ShadowAnswer json.RawMessage `json:"shadow_answer"`
}

// Comparison is an endpoint's shadow comparison, added up over every
// gateway, since its mirror was last set (Epoch).
type Comparison struct {
	Endpoint string           `json:"endpoint_name"`
	Mirror   map[string]int   `json:"mirror_traffic"`
	Epoch    int64            `json:"since_generation"`
	Since    time.Time        `json:"since,omitzero"`
	Path     string           `json:"path,omitempty"`
	Pairs    []PairComparison `json:"comparisons"`
	Diffs    []DiffSample     `json:"diffs,omitempty"`
}

// ReplayRequest replays a deployment's captured requests to another.
type ReplayRequest struct {
	// To is the deployment that answers the replayed requests.
	To string `json:"to"`
	// Limit replays at most this many of the newest records (0: 1000).
	Limit int `json:"limit,omitempty"`
	// Since keeps records captured at or after it.
	Since time.Time `json:"since,omitzero"`
}

// ReplaySummary says what a replay did.
type ReplaySummary struct {
	Endpoint string `json:"endpoint_name"`
	From     string `json:"from"`
	To       string `json:"to"`
	Records  int    `json:"records"`
	Sent     int    `json:"sent"`
	Answered int    `json:"answered"`
	Compared int    `json:"compared"`
	Agreed   int    `json:"agreed"`
	Dropped  int    `json:"dropped"`
}

// CaptureOptions select captured records.
type CaptureOptions struct {
	// Limit keeps the newest Limit records (0: 100).
	Limit int
	// Since keeps records captured at or after it.
	Since time.Time
	// RequestID keeps the record of one request.
	RequestID string
}

func rolloutPath(endpoint, name string) string { return deploymentPath(endpoint, name) + "/rollout" }

// StartRollout starts a progressive rollout of a deployment.
func (c *Client) StartRollout(ctx context.Context, endpoint, name string, req RolloutRequest) (*Rollout, error) {
	var out Rollout
	if _, err := c.sendJSON(ctx, http.MethodPost, rolloutPath(endpoint, name), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRollout returns the deployment's newest rollout with its figures and
// history.
func (c *Client) GetRollout(ctx context.Context, endpoint, name string) (*Rollout, error) {
	var out Rollout
	if err := c.getJSON(ctx, rolloutPath(endpoint, name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RolloutAction pauses, resumes or aborts the deployment's active rollout
// (action "pause", "resume" or "abort").
func (c *Client) RolloutAction(ctx context.Context, endpoint, name, action string) (*Rollout, error) {
	var out Rollout
	if _, err := c.sendJSON(ctx, http.MethodPost, rolloutPath(endpoint, name)+"/"+action, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRollouts lists an endpoint's rollouts, oldest first.
func (c *Client) ListRollouts(ctx context.Context, endpoint string) ([]Rollout, error) {
	var out []Rollout
	if err := c.getJSON(ctx, "/endpoints/"+url.PathEscape(endpoint)+"/rollouts", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// TrafficHistory lists an endpoint's traffic changes, oldest first (limit:
// the newest limit; 0 all).
func (c *Client) TrafficHistory(ctx context.Context, endpoint string, limit int) ([]TrafficChange, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out []TrafficChange
	if err := c.getJSON(ctx, "/endpoints/"+url.PathEscape(endpoint)+"/traffic-history", q, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Compare returns an endpoint's shadow comparison; all includes every
// epoch, not only those since the mirror was last set.
func (c *Client) Compare(ctx context.Context, endpoint string, diffs int, all bool) (*Comparison, error) {
	q := url.Values{"diffs": {strconv.Itoa(diffs)}}
	if all {
		q.Set("all", "true")
	}
	var out Comparison
	if err := c.getJSON(ctx, "/endpoints/"+url.PathEscape(endpoint)+"/compare", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Capture streams a deployment's captured records as JSON Lines, oldest
// first.
func (c *Client) Capture(ctx context.Context, endpoint, name string, o CaptureOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if o.RequestID != "" {
		q.Set("request_id", o.RequestID)
	}
	req, err := c.newRequest(ctx, http.MethodGet, deploymentPath(endpoint, name)+"/capture", q, nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// Replay replays a deployment's captured requests to another deployment
// and compares the answers.
func (c *Client) Replay(ctx context.Context, endpoint, name string, req ReplayRequest) (*ReplaySummary, error) {
	var out ReplaySummary
	if _, err := c.sendJSON(ctx, http.MethodPost, deploymentPath(endpoint, name)+"/capture/replay", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
