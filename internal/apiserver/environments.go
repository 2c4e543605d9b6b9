package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// postEnvironment registers an environment version (az ml environment
// create): the document's local paths must already be uploaded artifacts.
func (s *Server) postEnvironment(w http.ResponseWriter, r *http.Request) error {
	body, err := readDocument(r)
	if err != nil {
		return err
	}
	doc, err := spec.Parse("request body", body, spec.ParseOptions{Expect: spec.KindEnvironment})
	if err != nil {
		return validationError(err)
	}
	e := doc.Environment
	if err := e.Validate(); err != nil {
		return validationError(err)
	}
	var artifacts []string
	for _, ref := range e.LocalPaths() {
		if !strings.HasPrefix(ref.Path, "sha256:") {
			return badRequest(ref.Field, "%s is a local path the server cannot read; register environments with the plumbline CLI, which uploads local folders, or upload it (POST %s/artifacts) and give its sha256: digest", ref.Path, prefix)
		}
		artifacts = append(artifacts, ref.Path)
	}
	if e.Build != nil {
		man, err := s.cfg.Registry.Manifest(r.Context(), e.Build.Path)
		if err == nil {
			df := e.Build.DockerfilePath
			if df == "" {
				df = spec.DefaultDockerfilePath
			}
			if !manifestHasFile(man, man.Root()+"/"+strings.TrimPrefix(df, "./")) {
				return badRequest("build.dockerfile_path", "%s is not in the build context %s", df, man.Root())
			}
		}
	}
	stored, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ev, created, err := s.cfg.Registry.CreateEnvironment(r.Context(), store.EnvironmentVersion{
		Name: e.Name, Version: e.Version, Spec: stored, Description: e.Description, Tags: e.Tags,
	}, artifacts)
	switch {
	case errors.Is(err, store.ErrConflict):
		return conflict(e.Name+":"+e.Version, "%v", err)
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrArtifactNotFound):
		return badRequest("", "%v", err)
	case err != nil:
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, environmentOut(ev, nil))
	return nil
}

func manifestHasFile(m registry.Manifest, p string) bool {
	for _, e := range m.Entries {
		if e.Path == p {
			return e.Type == registry.TypeFile
		}
	}
	return false
}

// environmentOut is the API form of a stored environment version: its
// document's fields, then the registry's.
func environmentOut(e store.EnvironmentVersion, usedBy []string) api.Environment {
	var out api.Environment
	_ = json.Unmarshal(e.Spec, &out) // the document's keys are the API's
	out.Name, out.Version, out.Digest = e.Name, e.Version, e.Digest
	out.Description, out.Tags = e.Description, e.Tags
	out.Archived, out.CreatedAt, out.UsedBy = e.Archived, e.CreatedAt, usedBy
	return out
}

func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request) error {
	f, err := listFilter(r)
	if err != nil {
		return err
	}
	es, err := s.cfg.Store.ListEnvironments(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]api.Environment, 0, len(es))
	for _, e := range es {
		out = append(out, environmentOut(e, nil))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getEnvironment(w http.ResponseWriter, r *http.Request) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	label := strings.TrimPrefix(version, "@")
	if label == registry.LabelLatest {
		version = label
	}
	e, err := s.cfg.Registry.ResolveEnvironment(r.Context(), name, version)
	if errors.Is(err, store.ErrNotFound) {
		if version == registry.LabelLatest {
			return notFound(name, "environment %s has no version that is not archived", name)
		}
		return notFound(name+":"+version, "environment %s version %s not found; see what is registered with: plumbline environment list", name, version)
	}
	if err != nil {
		return err
	}
	deps, err := s.cfg.Store.ListDeployments(r.Context(), "")
	if err != nil {
		return err
	}
	var used []string
	for _, d := range deps {
		if rec, err := resolve.DecodeRecord(d.Spec); err == nil && rec.Plan != nil &&
			rec.Plan.EnvironmentName == e.Name && rec.Plan.EnvironmentVersion == e.Version {
			used = append(used, d.Endpoint+"/"+d.Name)
		}
	}
	writeJSON(w, http.StatusOK, environmentOut(e, used))
	return nil
}

func (s *Server) archiveEnvironment(archived bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, version := r.PathValue("name"), r.PathValue("version")
		if err := s.cfg.Store.SetEnvironmentArchived(r.Context(), name, version, archived); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(name, "environment %s %s not found", name, version)
			}
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
