package apiserver

import (
	"net/http"
	"path/filepath"
	"sort"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/snippet"
)

// getSnippets answers an endpoint's ready-to-paste calls. The request in
// them is, in order: the request_file query parameter (an absolute path on
// the caller's machine), the sample request of the deployment with the
// most traffic that has one, or request.json in the caller's folder.
func (s *Server) getSnippets(w http.ResponseWriter, r *http.Request) error {
	name := nameParam(r, "endpoint")
	rec, err := s.cfg.Store.GetEndpoint(r.Context(), name)
	if err != nil {
		return s.endpointErr(name, err)
	}
	e, err := s.endpointOut(r, rec)
	if err != nil {
		return err
	}
	in := snippet.Input{
		Endpoint: e.Name, ScoringURI: e.ScoringURI, AuthMode: e.AuthMode,
		CLI: s.cfg.CLI, CLIArgs: s.cfg.CLIArgs, CACert: s.cfg.Info.CACertPath,
	}
	if f := r.URL.Query().Get("request_file"); f != "" {
		if !filepath.IsAbs(f) {
			return badRequest("request_file", "request_file %q: give an absolute path, so the snippets work from any folder", f)
		}
		in.RequestFile = f
	} else {
		deps, err := s.cfg.Store.ListDeployments(r.Context(), rec.Name)
		if err != nil {
			return err
		}
		sort.SliceStable(deps, func(i, j int) bool { return e.Traffic[deps[i].Name] > e.Traffic[deps[j].Name] })
		for _, d := range deps {
			if dr, err := resolve.DecodeRecord(d.Spec); err == nil && dr.Plan != nil && len(dr.Plan.SampleRequest) > 0 {
				in.Request = dr.Plan.SampleRequest
				break
			}
		}
	}
	out := snippet.Make(in)
	writeJSON(w, http.StatusOK, api.Snippets{Shell: out.Shell, Curl: out.Curl, R: out.R})
	return nil
}
