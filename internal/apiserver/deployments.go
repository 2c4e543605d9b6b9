package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// maxDeploymentsPerEndpoint is Azure's limit.
const maxDeploymentsPerEndpoint = 20

// parseDeployment parses and validates a deployment document for endpoint.
func (s *Server) parseDeployment(r *http.Request, endpoint, name string) (*spec.Deployment, error) {
	body, err := readDocument(r)
	if err != nil {
		return nil, err
	}
	doc, err := spec.Parse("request body", body, spec.ParseOptions{Expect: spec.KindDeployment})
	if err != nil {
		return nil, validationError(err)
	}
	d := doc.Deployment
	d.Name, d.EndpointName = strings.ToLower(d.Name), strings.ToLower(d.EndpointName)
	if d.EndpointName == "" {
		d.EndpointName = endpoint
	}
	if name != "" && d.Name == "" {
		d.Name = name
	}
	if err := d.Validate(); err != nil {
		return nil, validationError(err)
	}
	if !strings.EqualFold(d.EndpointName, endpoint) {
		return nil, badRequest("endpoint_name", "the document's endpoint_name is %s but the request is for endpoint %s", d.EndpointName, endpoint)
	}
	if name != "" && !strings.EqualFold(d.Name, name) {
		return nil, badRequest("name", "the document names deployment %s but the request is for %s", d.Name, name)
	}
	return d, nil
}

// resolveDeployment pins a validated deployment into a stored record.
func (s *Server) resolveDeployment(r *http.Request, endpoint string, d *spec.Deployment) ([]byte, *resolve.Record, error) {
	rec, err := s.resolver().Resolve(r.Context(), endpoint, d)
	if err != nil {
		var re *resolve.Error
		if errors.As(err, &re) {
			return nil, nil, badRequest(re.Field, "%s", re.Message)
		}
		return nil, nil, err
	}
	b, err := rec.Marshal()
	return b, rec, err
}

func (s *Server) postDeployment(w http.ResponseWriter, r *http.Request) error {
	epName := nameParam(r, "endpoint")
	ep, err := s.cfg.Store.GetEndpoint(r.Context(), epName)
	if err != nil {
		return s.endpointErr(epName, err)
	}
	if ep.State == store.StateDeleting {
		return conflict(epName, "endpoint %s is being deleted", epName)
	}
	d, err := s.parseDeployment(r, ep.Name, "")
	if err != nil {
		return err
	}
	existing, err := s.cfg.Store.ListDeployments(r.Context(), ep.Name)
	if err != nil {
		return err
	}
	for _, x := range existing {
		if strings.EqualFold(x.Name, d.Name) {
			return conflict(d.Name, "deployment %s already exists in endpoint %s; to change it use 'plumbline online-deployment update -f FILE' (or 'plumbline apply -f FILE')", d.Name, ep.Name)
		}
	}
	if len(existing) >= maxDeploymentsPerEndpoint {
		return badRequest("name", "endpoint %s already has %d deployments, the most an endpoint may have; delete one first", ep.Name, len(existing))
	}
	b, rec, err := s.resolveDeployment(r, ep.Name, d)
	if err != nil {
		return err
	}
	rec.Generation = 1
	if b, err = rec.Marshal(); err != nil {
		return err
	}
	dep, err := s.cfg.Store.CreateDeployment(r.Context(), store.Deployment{
		Endpoint: ep.Name, Name: d.Name, Spec: b, State: store.StateCreating, Generation: 1,
	})
	if errors.Is(err, store.ErrExists) {
		return conflict(d.Name, "deployment %s already exists in endpoint %s", d.Name, ep.Name)
	}
	if err != nil {
		return err
	}
	s.deploymentEvents0(r, dep, rec, "Created", "deployment created")
	s.cfg.Runtime.Notify()
	writeJSON(w, http.StatusCreated, s.deploymentOut(dep))
	return nil
}

// deploymentEvents0 records the creation/update event and the resolver's
// notices.
func (s *Server) deploymentEvents0(r *http.Request, dep store.Deployment, rec *resolve.Record, reason, msg string) {
	p := rec.Plan
	runtime := string(p.Runtime)
	if p.Lean() {
		runtime += fmt.Sprintf(" (lean R runtime, %d worker(s) per instance)", p.Workers)
	}
	detail := fmt.Sprintf("%s: runtime %s, %d instance(s)", msg, runtime, p.InstanceCount)
	if p.ModelName != "" {
		detail += fmt.Sprintf(", model %s:%s (%s)", p.ModelName, p.ModelVersion, shortDigest(p.ModelDigest))
	}
	if p.CodeDigest != "" {
		detail += ", code " + shortDigest(p.CodeDigest)
	}
	s.event(r, dep.Endpoint, dep.Name, "Normal", reason, detail)
	for _, n := range rec.Notices {
		s.event(r, dep.Endpoint, dep.Name, "Normal", "Notice", n)
	}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func (s *Server) putDeployment(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	cur, err := s.cfg.Store.GetDeployment(r.Context(), epName, name)
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	if err := inFlight(cur); err != nil {
		return err
	}
	d, err := s.parseDeployment(r, epName, name)
	if err != nil {
		return err
	}
	b, rec, err := s.resolveDeployment(r, epName, d)
	if err != nil {
		return err
	}
	if cur.State == store.StateSucceeded && sameRecord(cur.Spec, b) {
		// Nothing changes: no new generation, no rollout (apply/up are idempotent).
		writeJSON(w, http.StatusOK, s.deploymentOut(cur))
		return nil
	}
	if prev, err := resolve.DecodeRecord(cur.Spec); err == nil {
		if prev.Generation == 0 {
			prev.Generation = cur.Generation
		}
		rec = rec.WithPrevious(prev, cur.State == store.StateSucceeded)
	}
	dep, err := s.cfg.Store.UpdateDeployment(r.Context(), epName, name, func(x *store.Deployment) error {
		if err := inFlight(*x); err != nil {
			return err
		}
		x.Generation++
		rec.Generation = x.Generation
		b, err := rec.Marshal()
		if err != nil {
			return err
		}
		x.Spec, x.State, x.Reason = b, store.StateUpdating, ""
		return nil
	})
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	s.deploymentEvents0(r, dep, rec, "Updating", "deployment update started")
	s.cfg.OnChange() // request settings apply to the routing table at once
	s.cfg.Runtime.Notify()
	writeJSON(w, http.StatusOK, s.deploymentOut(dep))
	return nil
}

// inFlight refuses a change while another operation runs, as Azure does
// (409).
func inFlight(d store.Deployment) error {
	switch d.State {
	case store.StateCreating, store.StateUpdating, store.StateDeleting:
		return conflict(d.Name, "Cannot change deployment %s because it is in %s provisioning state; wait until it is Succeeded or Failed", d.Name, d.State)
	}
	return nil
}

func (s *Server) deploymentErr(ctx context.Context, endpoint, name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		if _, e := s.cfg.Store.GetEndpoint(ctx, endpoint); errors.Is(e, store.ErrNotFound) {
			return notFound(endpoint, "endpoint %s not found", endpoint)
		}
		return notFound(name, "deployment %s not found in endpoint %s", name, endpoint)
	}
	return err
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	dep, err := s.cfg.Store.GetDeployment(r.Context(), epName, name)
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	writeJSON(w, http.StatusOK, s.deploymentOut(dep))
	return nil
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	epName := nameParam(r, "endpoint")
	if _, err := s.cfg.Store.GetEndpoint(r.Context(), epName); err != nil {
		return s.endpointErr(epName, err)
	}
	deps, err := s.cfg.Store.ListDeployments(r.Context(), epName)
	if err != nil {
		return err
	}
	out := make([]api.Deployment, 0, len(deps))
	for _, d := range deps {
		out = append(out, s.deploymentOut(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	// The traffic is checked inside the write, with the endpoint locked
	// first: a traffic update that checked this deployment was live cannot
	// commit in between (putEndpoint locks the endpoint and checks inside
	// its write too).
	_, err := s.cfg.Store.UpdateDeploymentWithEndpoint(r.Context(), epName, name, func(ep *store.Endpoint, x *store.Deployment) error {
		if ep.Traffic[name] > 0 {
			return conflict(name, "deployment %s still has %d%% of the live traffic; move it to other deployments first, e.g. plumbline online-endpoint update --name %s --traffic \"<other>=100\"", name, ep.Traffic[name], epName)
		}
		if ep.Mirror[name] > 0 {
			return conflict(name, "deployment %s receives %d%% mirrored traffic; stop mirroring first: plumbline online-endpoint update --name %s --mirror-traffic \"%s=0\"", name, ep.Mirror[name], epName, name)
		}
		if x.State == store.StateDeleting {
			return conflict(name, "deployment %s is already being deleted", name)
		}
		x.State, x.Reason = store.StateDeleting, ""
		return nil
	})
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	s.event(r, epName, name, "Normal", "Deleting", "deployment deletion started: draining instances")
	s.cfg.OnChange()
	s.cfg.Runtime.Notify()
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deploymentOut renders a deployment: the pinned document flattened with
// status and instances.
func (s *Server) deploymentOut(d store.Deployment) api.Deployment {
	out := api.Deployment{
		Name: d.Name, EndpointName: d.Endpoint, ProvisioningState: d.State, Reason: d.Reason,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Instances: []api.Instance{},
	}
	if rec, err := resolve.DecodeRecord(d.Spec); err == nil {
		out.Spec = defaultedDocument(rec.Document)
		if p := rec.Plan; p != nil {
			out.ModelDigest, out.CodeDigest, out.Runtime = p.ModelDigest, p.CodeDigest, string(p.Runtime)
		}
		out.Serving = serving(d, rec)
	}
	if ins := s.cfg.Runtime.Instances(d.Endpoint, d.Name); ins != nil {
		out.Instances = ins
	}
	if s.cfg.Health != nil {
		out.Health = s.cfg.Health.DeploymentHealth(d.Endpoint, d.Name)
	}
	return out
}

func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	dep, err := s.cfg.Store.GetDeployment(r.Context(), epName, name)
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	q := r.URL.Query()
	lines := 5000
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("lines", "lines %q: want a whole number", v)
		}
		lines = n
	}
	follow := q.Get("follow") == "true"
	if q.Get("container") == LogContainerStorage {
		if follow {
			return badRequest("follow", "follow works for the inference-server container only; storage-initializer logs are complete once the instance starts")
		}
		return s.storageLogs(w, r, epName, name, q.Get("instance"), lines)
	}
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.f = f
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	ctx := r.Context()
	if follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.streams, cancel)()
	}
	switch c := q.Get("container"); c {
	case "", "inference-server":
	case LogContainerBuild:
		if ok, err := s.writeBuildLog(fw, dep, lines); err != nil || ok {
			return err
		}
		return notFound(name, "deployment %s has no image build log: plumbline builds an image only for an environment with build (under serve --driver docker)", name)
	default:
		return badRequest("container", "container %q: want inference-server (the instances' output), %s (fetching the model and code) or %s (the image build)", c, LogContainerStorage, LogContainerBuild)
	}
	err = s.cfg.Runtime.Logs(ctx, epName, name, q.Get("instance"), lines, follow, fw)
	if err != nil && !fw.wrote {
		// No instance (yet, or any more): the image build's log, if any,
		// says why.
		if ok, berr := s.writeBuildLog(fw, dep, lines); ok || berr != nil {
			return berr
		}
		return notFound(name, "no logs for deployment %s: %v", name, err)
	}
	return nil
}

// storageLogs writes the storage-initializer "log": the events of the step
// that materialises the deployment's model and code for each instance, one
// line each, the last lines of them.
func (s *Server) storageLogs(w http.ResponseWriter, r *http.Request, endpoint, deployment, instance string, lines int) error {
	evs, err := s.cfg.Store.ListEvents(r.Context(), store.EventFilter{Endpoint: endpoint, Deployment: deployment, Instance: instance})
	if err != nil {
		return err
	}
	var out []string
	for _, e := range evs {
		if !slices.Contains(store.StorageInitializerReasons, e.Reason) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s: %s\n", e.Time.UTC().Format(time.RFC3339), e.Instance, e.Reason, e.Message))
	}
	if lines > 0 && len(out) > lines {
		out = out[len(out)-lines:]
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	for _, l := range out {
		if _, err := io.WriteString(w, l); err != nil {
			return nil
		}
	}
	return nil
}

// flushWriter flushes after every write so followed logs arrive at once.
type flushWriter struct {
	w     http.ResponseWriter
	f     http.Flusher
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = true
	n, err := f.w.Write(p)
	if f.f != nil {
		f.f.Flush()
	}
	return n, err
}

func (s *Server) deploymentEvents(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	if _, err := s.cfg.Store.GetDeployment(r.Context(), epName, name); err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	return s.writeEvents(w, r, store.EventFilter{Endpoint: epName, Deployment: name})
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	return s.writeEvents(w, r, store.EventFilter{Endpoint: strings.ToLower(q.Get("endpoint")), Deployment: strings.ToLower(q.Get("deployment"))})
}

func (s *Server) writeEvents(w http.ResponseWriter, r *http.Request, f store.EventFilter) error {
	q := r.URL.Query()
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("after", "after %q: want an event id", v)
		}
		f.AfterID = n
	}
	f.Limit = 500
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("limit", "limit %q: want a whole number", v)
		}
		f.Limit = n
	}
	evs, err := s.cfg.Store.ListEvents(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]api.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, api.Event{ID: e.ID, Time: e.Time, Endpoint: e.Endpoint, Deployment: e.Deployment, Instance: e.Instance, Type: e.Type, Reason: e.Reason, Message: e.Message})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// sameRecord reports whether two stored records pin the same document and
// plan (notices aside).
func sameRecord(a, b []byte) bool {
	ra, err1 := resolve.DecodeRecord(a)
	rb, err2 := resolve.DecodeRecord(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ja, _ := json.Marshal(struct {
		D json.RawMessage
		P *resolve.Plan
	}{compact(ra.Document), ra.Plan})
	jb, _ := json.Marshal(struct {
		D json.RawMessage
		P *resolve.Plan
	}{compact(rb.Document), rb.Plan})
	return bytes.Equal(ja, jb)
}

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// defaultedDocument is a stored document with Azure's defaults filled in,
// as show prints it.
func defaultedDocument(doc []byte) json.RawMessage {
	var d spec.Deployment
	if err := json.Unmarshal(doc, &d); err != nil {
		return doc
	}
	b, err := json.Marshal(d.Defaulted())
	if err != nil {
		return doc
	}
	return b
}

// getDocument returns the deployment document as given (references pinned,
// no defaults), for clients that change one field and send it back.
func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) error {
	epName, name := nameParam(r, "endpoint"), nameParam(r, "deployment")
	dep, err := s.cfg.Store.GetDeployment(r.Context(), epName, name)
	if err != nil {
		return s.deploymentErr(r.Context(), epName, name, err)
	}
	rec, err := resolve.DecodeRecord(dep.Spec)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(rec.Document)
	return err
}

// resolver is the configured Resolver, bound to the registry.
func (s *Server) resolver() *resolve.Resolver {
	s.resolverOnce.Do(func() {
		if s.cfg.Resolver == nil {
			s.cfg.Resolver = resolve.New(s.cfg.Registry)
		} else {
			s.cfg.Resolver.SetRegistry(s.cfg.Registry)
		}
	})
	return s.cfg.Resolver
}

// LogContainerStorage is the logs' container query value for the
// storage-initializer step (storageLogs).
const LogContainerStorage = "storage-initializer"

// serving says which earlier version serves when the latest one failed.
func serving(d store.Deployment, rec *resolve.Record) *api.DeploymentServing {
	prev := rec.Previous
	if d.State != store.StateFailed || prev == nil || prev.Plan == nil {
		return nil
	}
	out := &api.DeploymentServing{Version: prev.Generation}
	if p := prev.Plan; p.ModelName != "" {
		out.Model = p.ModelName + ":" + p.ModelVersion
	}
	out.Summary = "Failed — still serving the previous version"
	if out.Version > 0 {
		out.Summary = fmt.Sprintf("Failed — still serving version %d", out.Version)
	}
	if out.Model != "" {
		out.Summary += " (model " + out.Model + ")"
	}
	return out
}
