package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/capture"
	"github.com/plumbline/plumbline/internal/rollout"
	"github.com/plumbline/plumbline/internal/store"
)

// Safe rollout routes: progressive rollouts, the traffic history, the
// shadow comparison, captured records and their replay.

// Replayer sends captured requests to a deployment through the gateway of
// this process and compares the answers (server wires the gateway's).
type Replayer interface {
	Replay(ctx context.Context, endpoint, from, to string, reqs []ReplayInput) (ReplayResult, error)
}

// ReplayInput is one captured request with the answer it got.
type ReplayInput struct {
	RequestID    string
	Body, Answer []byte
	Status       int
	Seconds      float64
}

// ReplayResult counts what a replay did.
type ReplayResult struct{ Sent, Answered, Compared, Agreed, Dropped int }

// ErrReplayTarget: the gateway does not route to the deployment asked for.
var ErrReplayTarget = errors.New("the gateway does not route to that deployment")

func (s *Server) safeRoutes() []route {
	return []route{
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/rollout", s.postRollout},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}/rollout", s.getRollout},
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/rollout/pause", s.rolloutAction("pause")},
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/rollout/resume", s.rolloutAction("resume")},
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/rollout/abort", s.rolloutAction("abort")},
		{"GET", "/endpoints/{endpoint}/rollouts", s.listRollouts},
		{"GET", "/endpoints/{endpoint}/traffic-history", s.trafficHistory},
		{"GET", "/endpoints/{endpoint}/compare", s.getCompare},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}/capture", s.getCapture},
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/capture/replay", s.postReplay},
	}
}

func init() {
	for k, v := range map[string]routeDoc{
		"POST /endpoints/{endpoint}/deployments/{deployment}/rollout":        {"Start a progressive rollout of the deployment (steps, bake time, gates; 409 if one is in progress)", api.RolloutRequest{}, api.Rollout{}, 201},
		"GET /endpoints/{endpoint}/deployments/{deployment}/rollout":         {"The deployment's newest rollout with the current step's figures and its traffic history", nil, api.Rollout{}, 200},
		"POST /endpoints/{endpoint}/deployments/{deployment}/rollout/pause":  {"Pause the running rollout (traffic stays; no gate is judged)", nil, api.Rollout{}, 200},
		"POST /endpoints/{endpoint}/deployments/{deployment}/rollout/resume": {"Resume a paused rollout (the step's bake time starts again)", nil, api.Rollout{}, 200},
		"POST /endpoints/{endpoint}/deployments/{deployment}/rollout/abort":  {"Abort the rollout: traffic returns to where it was when it started", nil, api.Rollout{}, 200},
		"GET /endpoints/{endpoint}/rollouts":                                 {"An endpoint's rollouts, oldest first", nil, []api.Rollout{}, 200},
		"GET /endpoints/{endpoint}/traffic-history":                          {"Which deployment, model version and digest served what share, and when (query: limit)", nil, []api.TrafficChange{}, 200},
		"GET /endpoints/{endpoint}/compare":                                  {"The shadow comparison added up over every gateway since the mirror was set (query: diffs, all)", nil, api.Comparison{}, 200},
		"GET /endpoints/{endpoint}/deployments/{deployment}/capture":         {"Captured request/response records as JSON Lines, oldest first (query: limit, since, request_id)", nil, "application/x-ndjson", 200},
		"POST /endpoints/{endpoint}/deployments/{deployment}/capture/replay": {"Replay the deployment's captured requests to another deployment and compare the answers (409 without a gateway in this replica)", api.ReplayRequest{}, api.ReplaySummary{}, 200},
	} {
		docs[k] = v
	}
}

func (s *Server) rollouts() *rollout.Ops { return &rollout.Ops{Store: s.cfg.Store, Now: s.cfg.Now} }

// rolloutErr maps a rollout problem to the API's errors.
func rolloutErr(err error) error {
	var p *rollout.Problem
	if errors.As(err, &p) {
		switch {
		case p.NotFound:
			return notFound("", "%s", p.Msg)
		case p.Conflict:
			return conflict("", "%s", p.Msg)
		}
		return badRequest("", "%s", p.Msg)
	}
	return err
}

func (s *Server) postRollout(w http.ResponseWriter, r *http.Request) error {
	ep, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	var req api.RolloutRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	ops := s.rollouts()
	ro, err := ops.Start(r.Context(), ep, name, req)
	if err != nil {
		return rolloutErr(err)
	}
	s.cfg.OnChange()
	return writeRollout(w, r, ops, ro, http.StatusCreated)
}

// writeRollout answers with ro's view (its figures and history).
func writeRollout(w http.ResponseWriter, r *http.Request, ops *rollout.Ops, ro store.Rollout, status int) error {
	out, err := ops.View(r.Context(), ro, true)
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	ops := s.rollouts()
	ro, err := ops.Latest(r.Context(), nameParam(r, "endpoint"), nameParam(r, "deployment"))
	if err != nil {
		return rolloutErr(err)
	}
	return writeRollout(w, r, ops, ro, http.StatusOK)
}

func (s *Server) rolloutAction(action string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		ep, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
		ops := s.rollouts()
		var (
			ro  store.Rollout
			err error
		)
		switch action {
		case "pause":
			ro, err = ops.Pause(r.Context(), ep, name)
		case "resume":
			ro, err = ops.Resume(r.Context(), ep, name)
		default:
			ro, err = ops.Abort(r.Context(), ep, name)
		}
		if err != nil {
			return rolloutErr(err)
		}
		s.cfg.OnChange()
		return writeRollout(w, r, ops, ro, http.StatusOK)
	}
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	ep := nameParam(r, "endpoint")
	if _, err := s.cfg.Store.GetEndpoint(r.Context(), ep); err != nil {
		return s.endpointErr(ep, err)
	}
	rs, err := s.cfg.Store.ListRollouts(r.Context(), store.RolloutFilter{Endpoint: ep})
	if err != nil {
		return err
	}
	ops := s.rollouts()
	out := make([]api.Rollout, 0, len(rs))
	for _, ro := range rs {
		v, err := ops.View(r.Context(), ro, false)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) trafficHistory(w http.ResponseWriter, r *http.Request) error {
	ep := nameParam(r, "endpoint")
	if _, err := s.cfg.Store.GetEndpoint(r.Context(), ep); err != nil {
		return s.endpointErr(ep, err)
	}
	limit, err := intQuery(r, "limit", 0)
	if err != nil {
		return err
	}
	hist, err := s.cfg.Store.ListTrafficChanges(r.Context(), ep, 0, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rollout.HistoryView(hist))
	return nil
}

func (s *Server) getCompare(w http.ResponseWriter, r *http.Request) error {
	ep := nameParam(r, "endpoint")
	diffs, err := intQuery(r, "diffs", 5)
	if err != nil {
		return err
	}
	out, err := s.rollouts().Compare(r.Context(), ep, min(diffs, 50), r.URL.Query().Get("all") == "true")
	if err != nil {
		return s.endpointErr(ep, err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// captureRecords reads a deployment's records from this replica's data
// dir.
func (s *Server) captureRecords(r *http.Request, ep, name string, o capture.ReadOptions) ([]json.RawMessage, error) {
	if _, err := s.cfg.Store.GetDeployment(r.Context(), ep, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(name, "endpoint %s has no deployment %s", ep, name)
		}
		return nil, err
	}
	if s.cfg.CaptureDir == "" {
		return nil, nil
	}
	return capture.Read(s.cfg.CaptureDir, ep, name, o)
}

func (s *Server) getCapture(w http.ResponseWriter, r *http.Request) error {
	ep, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	limit, err := intQuery(r, "limit", 100)
	if err != nil {
		return err
	}
	o := capture.ReadOptions{Limit: limit, RequestID: r.URL.Query().Get("request_id")}
	if v := r.URL.Query().Get("since"); v != "" {
		if o.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return badRequest("since", "since %q: want an RFC 3339 time such as 2026-03-01T12:00:00Z", v)
		}
	}
	recs, err := s.captureRecords(r, ep, name, o)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	for _, rec := range recs {
		_, _ = w.Write(rec)
		_, _ = w.Write([]byte{'\n'})
	}
	return nil
}

// maxReplay bounds the records one replay sends.
const maxReplay = 10000

func (s *Server) postReplay(w http.ResponseWriter, r *http.Request) error {
	ep, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	var req api.ReplayRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.To == "" {
		return badRequest("to", "say which deployment answers the replayed requests: --to <deployment>")
	}
	if s.cfg.Replayer == nil {
		return conflict("", "this replica runs no gateway: replay from a replica with --role all")
	}
	to := strings.ToLower(strings.TrimSpace(req.To))
	if _, err := s.cfg.Store.GetDeployment(r.Context(), ep, to); errors.Is(err, store.ErrNotFound) {
		return notFound(to, "endpoint %s has no deployment %s", ep, to)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 1000
	}
	recs, err := s.captureRecords(r, ep, name, capture.ReadOptions{Limit: min(limit, maxReplay), Since: req.Since})
	if err != nil {
		return err
	}
	in := make([]ReplayInput, 0, len(recs))
	for _, rec := range recs {
		var c struct {
			RequestID string          `json:"request_id"`
			Status    int             `json:"status"`
			LatencyMs float64         `json:"latency_ms"`
			Request   json.RawMessage `json:"request"`
			Response  json.RawMessage `json:"response"`
		}
		if json.Unmarshal(rec, &c) != nil || len(c.Request) == 0 || string(c.Request) == "null" {
			continue // no body kept (too large, or not JSON under redaction rules)
		}
		in = append(in, ReplayInput{RequestID: c.RequestID, Body: c.Request, Answer: c.Response, Status: c.Status, Seconds: c.LatencyMs / 1000})
	}
	res, err := s.cfg.Replayer.Replay(r.Context(), ep, name, to, in)
	if errors.Is(err, ErrReplayTarget) {
		return conflict(to, "the gateway does not route to deployment %s of endpoint %s yet (is it Succeeded?)", to, ep)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ReplaySummary{Endpoint: ep, From: name, To: to, Records: len(in),
		Sent: res.Sent, Answered: res.Answered, Compared: res.Compared, Agreed: res.Agreed, Dropped: res.Dropped})
	return nil
}

func intQuery(r *http.Request, key string, def int) (int, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest(key, "%s %q: want a whole number, 0 or more", key, v)
	}
	return n, nil
}

// recordTrafficChange appends the endpoint's traffic history after a change
// through the API (failures are logged: the change has happened).
func (s *Server) recordTrafficChange(r *http.Request, e store.Endpoint, cause string) {
	deps, err := s.cfg.Store.ListDeployments(r.Context(), e.Name)
	if err == nil {
		_, err = s.cfg.Store.AppendTrafficChange(r.Context(), store.TrafficChange{
			Endpoint: e.Name, Generation: e.Generation, Cause: cause, Entries: rollout.Entries(e.Traffic, e.Mirror, deps),
		})
	}
	if err != nil {
		s.log.Warn("record the traffic history", "endpoint", e.Name, "err", err)
	}
}

// activeRollout refuses a traffic change while a rollout owns the traffic.
func (s *Server) activeRollout(r *http.Request, ep string) error {
	rs, err := s.cfg.Store.ListRollouts(r.Context(), store.RolloutFilter{Endpoint: ep, ActiveOnly: true})
	if err != nil || len(rs) == 0 {
		return err
	}
	ro := rs[0]
	return conflict("traffic", "%s", fmt.Sprintf("a rollout of %s (%s) owns endpoint %s's traffic; pause it and let it be, or abort it first: plumbline online-deployment rollout abort --name %s --endpoint-name %s",
		ro.Deployment, ro.State, ep, ro.Deployment, ep))
}
