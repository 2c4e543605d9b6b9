package apiserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/plumbline/plumbline/internal/auth"
)

// FetchPath is the route `plumbline fetch` reads an artifact from, with a
// token scoped to it (Config.Fetch) instead of the admin token: the
// storage initializer of a Kubernetes pod holds only such a token.
const FetchPath = prefix + "/fetch/"

// fetchRoutes registers GET /api/v1/fetch/{digest}.
func (s *Server) fetchRoutes() {
	s.mux.HandleFunc("GET "+FetchPath+"{digest}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.fetch(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) fetch(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if s.cfg.Fetch == nil {
		return &Error{Status: http.StatusNotFound, Code: "NotFound", Message: "this server issues no artifact tokens (it runs no Kubernetes driver)"}
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="plumbline-fetch"`)
		return &Error{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: "missing artifact token: send 'Authorization: Bearer <token>' (plumbline fetch --token-file)"}
	}
	if err := s.cfg.Fetch.Allows(tok, d); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="plumbline-fetch"`)
		msg := "the artifact token does not allow " + d
		if errors.Is(err, auth.ErrTokenExpired) {
			msg = "the artifact token has expired: the control plane renews it when it applies the deployment again"
		}
		return &Error{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg}
	}
	if !s.cfg.Registry.Has(r.Context(), d) {
		return notFound(d, "no artifact %s", d)
	}
	w.Header().Set("Content-Type", "application/x-tar")
	return s.cfg.Registry.WriteTar(r.Context(), d, w)
}
