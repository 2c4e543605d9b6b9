package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// parseEndpoint parses and validates an endpoint document from a request.
func (s *Server) parseEndpoint(r *http.Request) (*spec.Endpoint, *spec.Document, error) {
	body, err := readDocument(r)
	if err != nil {
		return nil, nil, err
	}
	doc, err := spec.Parse("request body", body, spec.ParseOptions{Expect: spec.KindEndpoint})
	if err != nil {
		return nil, nil, validationError(err)
	}
	ep := doc.Endpoint
	if err := ep.Validate(); err != nil {
		return nil, nil, validationError(err)
	}
	ep.Name = strings.ToLower(ep.Name)
	return ep, doc, nil
}

// nameParam is an endpoint or deployment name from the URL path. Names are
// case-insensitive, as in Azure: plumbline keeps them in lower case
// everywhere (store, traffic keys, routing), so My-Endpoint and my-endpoint
// are one endpoint.
func nameParam(r *http.Request, key string) string { return strings.ToLower(r.PathValue(key)) }

// validationError turns a spec error (list) into a 400 with one detail per
// problem.
func validationError(err error) error {
	var list spec.Errors
	if errors.As(err, &list) && len(list) > 0 {
		e := &Error{Status: http.StatusBadRequest, Code: "ValidationError", Err: err}
		for _, p := range list {
			e.Details = append(e.Details, api.Error{Code: "ValidationError", Message: p.Error(), Target: p.Field})
		}
		e.Message = list[0].Error()
		if len(list) > 1 {
			e.Message = fmt.Sprintf("%d problems in the document; the first: %s", len(list), list[0].Error())
		}
		e.Target = list[0].Field
		return e
	}
	return &Error{Status: http.StatusBadRequest, Code: "ValidationError", Message: err.Error(), Err: err}
}

func (s *Server) postEndpoint(w http.ResponseWriter, r *http.Request) error {
	ep, _, err := s.parseEndpoint(r)
	if err != nil {
		return err
	}
	if total(ep.Traffic) > 0 || total(ep.MirrorTraffic) > 0 {
		return badRequest("traffic", "traffic cannot be set when an endpoint is created, because its deployments must exist first; create the deployments, then run: plumbline online-endpoint update --name %s --traffic \"<deployment>=100\"", ep.Name)
	}
	primary, err := newKey()
	if err != nil {
		return err
	}
	secondary, err := newKey()
	if err != nil {
		return err
	}
	specJSON, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	rec, err := s.cfg.Store.CreateEndpoint(r.Context(), store.Endpoint{
		Name: ep.Name, Spec: specJSON, AuthMode: authMode(ep.AuthMode),
		PrimaryKey: primary, SecondaryKey: secondary,
		Traffic: map[string]int{}, Mirror: map[string]int{},
		State: store.StateSucceeded, Generation: 1,
	})
	if errors.Is(err, store.ErrExists) {
		return conflict(ep.Name, "endpoint %s already exists; to change it use 'plumbline online-endpoint update -f FILE' (or 'plumbline apply -f FILE', which creates or updates)", ep.Name)
	}
	if err != nil {
		return err
	}
	s.event(r, ep.Name, "", "Normal", "Created", "endpoint created with auth_mode "+authMode(ep.AuthMode))
	s.cfg.OnChange()
	out, err := s.endpointOut(r, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) putEndpoint(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	ep, _, err := s.parseEndpoint(r)
	if err != nil {
		return err
	}
	if !strings.EqualFold(ep.Name, name) {
		return badRequest("name", "the document names endpoint %s but the request is for %s", ep.Name, name)
	}
	specJSON, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	before, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	trafficChanged := !sameSplit(before.Traffic, ep.Traffic) || !sameSplit(before.Mirror, ep.MirrorTraffic)
	if trafficChanged {
		if err := s.activeRollout(r, name); err != nil {
			return err
		}
	}
	// The deployments are checked inside the write, with the endpoint
	// locked: a deletion that checked the traffic before this write cannot
	// commit in between (deleteDeployment locks the endpoint first too).
	rec, err := s.cfg.Store.UpdateEndpointWithDeployments(r.Context(), name, func(e *store.Endpoint, deps []store.Deployment) error {
		if e.State == store.StateDeleting {
			return conflict(name, "endpoint %s is being deleted", name)
		}
		if trafficChanged && e.Generation != before.Generation {
			// Its traffic changed since it was checked for a rollout
			// (one may have started): the caller decides again.
			return conflict(name, "endpoint %s changed while this update was being made (a rollout may have started); show it and try again", name)
		}
		live := map[string]bool{}
		for _, d := range deps {
			if d.State != store.StateDeleting {
				live[d.Name] = true
			}
		}
		for _, m := range []map[string]int{ep.Traffic, ep.MirrorTraffic} {
			for dep, pct := range m {
				if pct > 0 && !live[strings.ToLower(dep)] {
					return badRequest("traffic", "endpoint %s has no deployment %s; its deployments are: %s", name, dep, joinKeys(live))
				}
			}
		}
		if authMode(e.AuthMode) != authMode(ep.AuthMode) {
			e.TokenGeneration++ // tokens issued under another auth mode do not come back
		}
		e.Spec, e.AuthMode = specJSON, authMode(ep.AuthMode)
		e.Traffic, e.Mirror = nonZero(ep.Traffic), nonZero(ep.MirrorTraffic)
		e.Generation++
		return nil
	})
	if err != nil {
		return s.endpointErr(name, err)
	}
	s.event(r, name, "", "Normal", "Updated", "endpoint updated: traffic "+formatTraffic(rec.Traffic)+mirrorNote(rec.Mirror))
	s.cfg.OnChange()
	if trafficChanged {
		s.recordTrafficChange(r, rec, "online-endpoint update: traffic "+formatTraffic(rec.Traffic)+mirrorNote(rec.Mirror))
	}
	out, err := s.endpointOut(r, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) endpointErr(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(name, "endpoint %s not found", name)
	}
	return err
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	out, err := s.endpointOut(r, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	recs, err := s.cfg.Store.ListEndpoints(r.Context())
	if err != nil {
		return err
	}
	out := make([]api.Endpoint, 0, len(recs))
	for _, rec := range recs {
		e, err := s.endpointOut(r, rec)
		if err != nil {
			return err
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	_, err := s.cfg.Store.UpdateEndpoint(r.Context(), name, func(e *store.Endpoint) error {
		if e.State == store.StateDeleting {
			return conflict(name, "endpoint %s is already being deleted", name)
		}
		e.State, e.Reason = store.StateDeleting, ""
		e.Traffic, e.Mirror = map[string]int{}, map[string]int{}
		return nil
	})
	if err != nil {
		return s.endpointErr(name, err)
	}
	deps, err := s.cfg.Store.ListDeployments(r.Context(), name)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if _, err := s.cfg.Store.UpdateDeployment(r.Context(), name, d.Name, func(x *store.Deployment) error {
			x.State, x.Reason = store.StateDeleting, ""
			return nil
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	s.event(r, name, "", "Normal", "Deleting", fmt.Sprintf("endpoint deletion started (%d deployments)", len(deps)))
	s.cfg.OnChange()
	s.cfg.Runtime.Notify()
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// endpointOut renders an endpoint record as the API shows it. Deployments
// without traffic show 0, as Azure's get does.
func (s *Server) endpointOut(r *http.Request, rec store.Endpoint) (api.Endpoint, error) {
	var ep spec.Endpoint
	if err := json.Unmarshal(rec.Spec, &ep); err != nil {
		return api.Endpoint{}, fmt.Errorf("endpoint %s: stored spec: %w", rec.Name, err)
	}
	deps, err := s.cfg.Store.ListDeployments(r.Context(), rec.Name)
	if err != nil {
		return api.Endpoint{}, err
	}
	traffic := map[string]int{}
	for _, d := range deps {
		if _, mirrored := rec.Mirror[d.Name]; !mirrored {
			traffic[d.Name] = 0
		}
	}
	for k, v := range rec.Traffic {
		traffic[k] = v
	}
	mirror := map[string]int{}
	for k, v := range rec.Mirror {
		mirror[k] = v
	}
	kind := "Managed"
	if ep.Compute != "" {
		kind = "K8S"
	}
	return api.Endpoint{
		Name: rec.Name, Description: ep.Description, Tags: ep.Tags, AuthMode: authMode(rec.AuthMode), Kind: kind,
		Traffic: traffic, MirrorTraffic: mirror, ProvisioningState: rec.State, Reason: rec.Reason,
		ScoringURI: s.scoringURI(rec.Name), OpenAPIURI: s.openAPIURI(rec.Name),
		PublicNetworkAccess: ep.PublicNetworkAccess, Properties: ep.Properties,
		CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}, nil
}

func (s *Server) scoringURI(endpoint string) string {
	return strings.TrimRight(s.cfg.ScoringBaseURL, "/") + "/endpoints/" + url.PathEscape(endpoint) + "/score"
}

func (s *Server) openAPIURI(endpoint string) string {
	return strings.TrimRight(s.cfg.ScoringBaseURL, "/") + "/endpoints/" + url.PathEscape(endpoint) + "/swagger.json"
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	if authMode(rec.AuthMode) != spec.AuthKey {
		return badRequest("auth_mode", "Endpoint '%s' does not use keys for authentication (auth_mode is %s); get a token with: plumbline online-endpoint get-credentials --name %s", name, rec.AuthMode, name)
	}
	writeJSON(w, http.StatusOK, api.Keys{PrimaryKey: rec.PrimaryKey, SecondaryKey: rec.SecondaryKey})
	return nil
}

func (s *Server) regenerateKeys(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	var in api.RegenerateKeys
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	kt := strings.ToLower(in.KeyType)
	if kt == "" {
		kt = "primary"
	}
	if kt != "primary" && kt != "secondary" {
		return badRequest("keyType", "key type %q: want primary or secondary", in.KeyType)
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	var revoked bool
	rec, err := s.cfg.Store.UpdateEndpoint(r.Context(), name, func(e *store.Endpoint) error {
		switch authMode(e.AuthMode) {
		case spec.AuthKey:
		case spec.AuthAMLToken:
			// The credentials of an aml_token endpoint are its tokens:
			// regenerating them revokes every one issued so far.
			e.TokenGeneration++
			revoked = true
			return nil
		default:
			return badRequest("auth_mode", "Endpoint '%s' does not use keys for authentication.", name)
		}
		if kt == "primary" {
			e.PrimaryKey = key
		} else {
			e.SecondaryKey = key
		}
		return nil
	})
	if err != nil {
		return s.endpointErr(name, err)
	}
	if revoked {
		s.event(r, name, "", "Normal", "TokensRevoked", "every aml_token issued so far was revoked (regenerate-keys); clients get new ones with get-credentials")
		s.cfg.OnChange()
		writeJSON(w, http.StatusOK, api.Keys{TokensRevoked: true})
		return nil
	}
	s.event(r, name, "", "Normal", "KeyRegenerated", "the "+kt+" key was regenerated; the old one no longer works")
	s.cfg.OnChange()
	writeJSON(w, http.StatusOK, api.Keys{PrimaryKey: rec.PrimaryKey, SecondaryKey: rec.SecondaryKey})
	return nil
}

// revokeTokens revokes every aml_token issued for the endpoint so far: its
// token generation goes up, and tokens are bound to it.
func (s *Server) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.UpdateEndpoint(r.Context(), name, func(e *store.Endpoint) error {
		e.TokenGeneration++
		return nil
	})
	if err != nil {
		return s.endpointErr(name, err)
	}
	s.event(r, name, "", "Normal", "TokensRevoked", "every aml_token issued so far was revoked; clients get new ones with get-credentials")
	s.cfg.OnChange()
	writeJSON(w, http.StatusOK, api.TokensRevoked{Endpoint: rec.Name, TokenGeneration: rec.TokenGeneration})
	return nil
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	if authMode(rec.AuthMode) != spec.AuthAMLToken {
		return badRequest("auth_mode", "Endpoint '%s' does not use aml_token authentication (auth_mode is %s)", name, rec.AuthMode)
	}
	t, err := s.cfg.Tokens.IssueEndpointToken(auth.Subject{Endpoint: rec.Name, ID: rec.ID, Generation: rec.TokenGeneration}, s.cfg.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// event records an endpoint-level (or deployment-level) event; failures are
// logged, never returned: the change itself has already happened.
func (s *Server) event(r *http.Request, endpoint, deployment, typ, reason, msg string) {
	if _, err := s.cfg.Store.AppendEvent(r.Context(), store.Event{Endpoint: endpoint, Deployment: deployment, Type: typ, Reason: reason, Message: msg}); err != nil {
		s.log.Warn("record event", "endpoint", endpoint, "err", err)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// sameSplit compares two splits, zero shares and name case aside.
func sameSplit(a, b map[string]int) bool {
	x, y := nonZero(a), nonZero(b)
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if y[k] != v {
			return false
		}
	}
	return true
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v > 0 {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

func joinKeys(m map[string]bool) string {
	if len(m) == 0 {
		return "(none)"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func formatTraffic(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func mirrorNote(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return ", mirror " + formatTraffic(m)
}

func newKey() (string, error) { return auth.NewKey() }

// getEndpointDocument returns the endpoint's document with its live traffic:
// every field it was given (identity, compute, public_network_access…), for
// clients that change one thing and send it back.
func (s *Server) getEndpointDocument(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	var ep spec.Endpoint
	if err := json.Unmarshal(rec.Spec, &ep); err != nil {
		return fmt.Errorf("endpoint %s: stored spec: %w", name, err)
	}
	ep.Traffic, ep.MirrorTraffic = rec.Traffic, rec.Mirror
	writeJSON(w, http.StatusOK, &ep)
	return nil
}

// authMode is the endpoint's auth mode with Azure's default: an endpoint
// created without auth_mode uses keys (records written before this default
// was applied say "").
func authMode(m string) string {
	if m == "" {
		return spec.AuthKey
	}
	return m
}
