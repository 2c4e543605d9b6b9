package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/contract"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// postArtifact ingests a tar (or tar.gz) stream as an artifact.
func (s *Server) postArtifact(w http.ResponseWriter, r *http.Request) error {
	a, err := s.cfg.Registry.Ingest(r.Context(), r.Body, s.cfg.UploadLimits)
	if err != nil {
		return uploadError(err)
	}
	writeJSON(w, http.StatusCreated, api.Artifact{Digest: a.Digest, Files: a.Files, Size: a.Size, Root: a.Root})
	return nil
}

// uploadError classifies a refused upload.
func uploadError(err error) error {
	switch {
	case errors.Is(err, registry.ErrTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "PayloadTooLarge", Err: err,
			Message: "upload too large: " + strings.TrimPrefix(err.Error(), "ingest: ") + " (the server's limits are set with plumbline serve --max-upload-bytes and --max-upload-files)"}
	case errors.Is(err, registry.ErrUnsafeEntry), errors.Is(err, registry.ErrBadArchive):
		return &Error{Status: http.StatusBadRequest, Code: "BadArgument", Message: err.Error(), Err: err}
	}
	return err
}

func (s *Server) headArtifact(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if !s.cfg.Registry.Has(r.Context(), d) {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if !s.cfg.Registry.Has(r.Context(), d) {
		return notFound(d, "no artifact %s", d)
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.cfg.Registry.WriteTar(r.Context(), d, w)
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	m, err := s.cfg.Registry.Manifest(r.Context(), d)
	if err != nil {
		if !s.cfg.Registry.Has(r.Context(), d) {
			return notFound(d, "no artifact %s", d)
		}
		return err
	}
	out := make([]api.ManifestEntry, 0, len(m.Entries))
	for _, e := range m.Entries {
		out = append(out, api.ManifestEntry{Path: e.Path, Type: e.Type, Mode: e.Mode, Size: e.Size, Digest: e.Digest, Target: e.Target})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) postModel(w http.ResponseWriter, r *http.Request) error {
	var in api.ModelCreate
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if err := spec.ValidateName("model", in.Name); err != nil {
		return badRequest("name", "%v", err)
	}
	in.Name = registry.ModelName(in.Name)
	if in.Artifact == "" {
		return badRequest("artifact", "artifact is required: upload the model's files first (POST %s/artifacts)", prefix)
	}
	if !s.cfg.Registry.Has(r.Context(), in.Artifact) {
		return badRequest("artifact", "no artifact %s: upload the model's files first (POST %s/artifacts)", in.Artifact, prefix)
	}
	typ := in.Type
	if typ == "" {
		typ = "custom_model"
	}
	switch typ {
	case "custom_model", "mlflow_model", "triton_model":
	default:
		return badRequest("type", "model type %q: want custom_model, mlflow_model or triton_model", typ)
	}
	var ic json.RawMessage
	if len(in.InputContract) > 0 {
		var c contract.Contract
		if err := json.Unmarshal(in.InputContract, &c); err != nil {
			return badRequest("input_contract", "input_contract: %v", err)
		}
		if err := c.Validate(); err != nil {
			return badRequest("input_contract", "%v", err)
		}
		if c.Source == "" {
			c.Source = "model " + in.Name + " (model create --prototype)"
		}
		ic, _ = json.Marshal(&c)
	}
	m, created, err := s.cfg.Registry.CreateModel(r.Context(), store.ModelVersion{
		Name: in.Name, Version: in.Version, Digest: in.Artifact, Type: typ, Description: in.Description, Tags: in.Tags,
		Contract: ic, Stage: in.Stage,
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return conflict(in.Name+":"+in.Version, "%v", err)
		}
		return err
	}
	status := http.StatusOK
	out := modelOut(m, nil)
	if created {
		status = http.StatusCreated
		if s.cfg.ModelChecker != nil {
			out.Warnings = s.cfg.ModelChecker.CheckModel(r.Context(), m.Digest)
		}
	}
	writeJSON(w, status, out)
	return nil
}

func modelOut(m store.ModelVersion, usedBy []string) api.Model {
	return api.Model{
		Name: m.Name, Version: m.Version, Type: m.Type, Description: m.Description, Tags: m.Tags,
		Path: m.PathBase, Digest: m.Digest, Size: m.Size, Files: m.FileCount, Archived: m.Archived,
		CreatedAt: m.CreatedAt, UsedBy: usedBy, InputContract: m.Contract, Stage: m.Stage,
	}
}

// listFilter reads a versioned-asset list's filter from the query (models,
// environments).
func listFilter(r *http.Request) (store.ModelFilter, error) {
	q := r.URL.Query()
	f := store.ModelFilter{
		Name:            registry.ModelName(q.Get("name")),
		IncludeArchived: q.Get("include_archived") == "true",
		ArchivedOnly:    q.Get("archived_only") == "true",
	}
	if v := q.Get("max_results"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, badRequest("max_results", "max_results %q: want a whole number", v)
		}
		f.Limit = n
	}
	return f, nil
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	f, err := listFilter(r)
	if err != nil {
		return err
	}
	ms, err := s.cfg.Store.ListModels(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]api.Model, 0, len(ms))
	for _, m := range ms {
		out = append(out, modelOut(m, nil))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	name, version := registry.ModelName(r.PathValue("name")), r.PathValue("version")
	label := strings.TrimPrefix(version, "@")
	var (
		m   store.ModelVersion
		err error
	)
	if label == "latest" {
		m, err = s.cfg.Registry.ResolveModel(r.Context(), name, "latest")
	} else {
		m, err = s.cfg.Store.GetModelVersion(r.Context(), name, version)
	}
	if errors.Is(err, store.ErrNotFound) {
		if label == "latest" {
			return notFound(name, "model %s has no version that is not archived", name)
		}
		return notFound(name+":"+version, "model %s version %s not found", name, version)
	}
	if err != nil {
		return err
	}
	used, err := s.modelUsers(r, m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, modelOut(m, used))
	return nil
}

// modelUsers lists the deployments pinning a model version.
func (s *Server) modelUsers(r *http.Request, m store.ModelVersion) ([]string, error) {
	deps, err := s.cfg.Store.ListDeployments(r.Context(), "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range deps {
		rec, err := resolve.DecodeRecord(d.Spec)
		if err != nil || rec.Plan == nil {
			continue
		}
		if strings.EqualFold(rec.Plan.ModelName, m.Name) && rec.Plan.ModelVersion == m.Version {
			out = append(out, d.Endpoint+"/"+d.Name)
		}
	}
	return out, nil
}

// patchModel replaces a model version's description, tags and stage.
func (s *Server) patchModel(w http.ResponseWriter, r *http.Request) error {
	up, ok := s.cfg.Store.(store.ModelUpdater)
	if !ok {
		return &Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "this server's store cannot change model versions yet; register a new version instead"}
	}
	var in api.ModelUpdate
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	if strings.TrimPrefix(version, "@") == "latest" {
		m, err := s.cfg.Registry.ResolveModel(r.Context(), name, "latest")
		if errors.Is(err, store.ErrNotFound) {
			return notFound(name, "model %s has no version that is not archived", name)
		}
		if err != nil {
			return err
		}
		version = m.Version
	}
	m, err := up.UpdateModelMetadata(r.Context(), name, version, store.ModelMetadata{Description: in.Description, Tags: in.Tags, Stage: in.Stage})
	if errors.Is(err, store.ErrNotFound) {
		return notFound(name+":"+version, "model %s version %s not found", name, version)
	}
	if err != nil {
		return err
	}
	used, err := s.modelUsers(r, m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, modelOut(m, used))
	return nil
}

func (s *Server) archiveModel(archived bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, version := registry.ModelName(r.PathValue("name")), r.PathValue("version")
		if err := s.cfg.Store.SetModelArchived(r.Context(), name, version, archived); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(name, "model %s %s not found", name, version)
			}
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
