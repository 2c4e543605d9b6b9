// Package apiserver is plumbline's control-plane REST API under /api/v1:
// artifacts and models, endpoints with their keys and tokens, deployments
// with their logs and events, the server's description and its OpenAPI
// document. It authenticates every call with the admin token, validates
// documents with the spec package, pins them with resolve, stores them, and
// tells the reconciler to act.
//
// Errors are mapped to HTTP statuses in one place (writeError). This package
// must not import the gateway, a driver or the reconciler: it reaches the
// runtime through the Runtime interface.
package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// Runtime is what the API needs from the reconciler.
type Runtime interface {
	// Notify asks for a reconcile pass soon.
	Notify()
	// Instances describes a deployment's instances.
	Instances(endpoint, deployment string) []api.Instance
	// Logs writes a deployment's logs to w (see reconcile.Reconciler.Logs).
	Logs(ctx context.Context, endpoint, deployment, instance string, lines int, follow bool, w io.Writer) error
}

// ContainerLogger is an optional part of Runtime: the logs of one
// container of each instance, for drivers whose instances have several
// (Kubernetes: the storage initializer). It returns an error wrapping
// errors.ErrUnsupported when the driver's instances have one container.
type ContainerLogger interface {
	ContainerLogs(ctx context.Context, endpoint, deployment, instance, container string, lines int, follow bool, w io.Writer) error
}

// TokenIssuer issues aml_tokens for endpoints, bound to the endpoint's
// name, identity and token generation.
type TokenIssuer interface {
	IssueEndpointToken(sub auth.Subject, now time.Time) (api.Token, error)
}

// Config wires a Server.
type Config struct {
	Store    store.Store
	Registry *registry.Registry
	// Resolver pins deployments (its registry is set to Registry); nil
	// means a default one.
	Resolver *resolve.Resolver
	Runtime  Runtime
	Tokens   TokenIssuer
	// AdminToken authenticates every API call (Authorization: Bearer).
	AdminToken string
	// ScoringBaseURL is the gateway's public base URL, e.g.
	// https://localhost:8443; scoring URIs are built from it.
	ScoringBaseURL string
	// Info is returned by GET /api/v1/server.
	Info api.ServerInfo
	// OnChange is called after a change that affects routing (traffic,
	// keys, auth mode, deletions), before the response is written; when it
	// returns, the gateway must already route by the change. Nil means no-op.
	OnChange func()
	// Health, if set, gives each deployment's recent figures for show and
	// list.
	Health Health
	// ModelChecker, if set, looks at a newly registered model version's
	// files; its warnings are returned with the version.
	ModelChecker ModelChecker
	// CLI is the plumbline command the snippets name (best the absolute
	// path of the server's own binary) and CLIArgs the global flags it
	// needs to reach this server (--data-dir when not the default).
	CLI     string
	CLIArgs []string
	// Images builds and inspects container images (nil: no container
	// engine; the image API answers 409).
	Images ImageService
	// Fetch verifies the artifact tokens of GET /api/v1/fetch/{digest}
	// (plumbline fetch in a Kubernetes pod); nil: that route answers 404.
	Fetch *auth.ArtifactTokens
	// UploadLimits bound artifact uploads (zero: registry defaults).
	UploadLimits registry.Limits
	// CaptureDir is where this replica's gateway writes captured records
	// ("" : none here).
	CaptureDir string
	// Replayer replays captured requests through this replica's gateway
	// (nil: the replica has none; replay answers 409).
	Replayer Replayer
	Logger   *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Health reports a deployment's recent figures from the gateway's metrics.
type Health interface {
	DeploymentHealth(endpoint, deployment string) *api.DeploymentHealth
}

// ModelChecker finds problems in a model version's files that would make
// every request fail (a crate saved without its model), as warnings for the
// user.
type ModelChecker interface {
	CheckModel(ctx context.Context, digest string) []string
}

// Server is the control-plane API handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	resolverOnce sync.Once // sets cfg.Resolver's registry once

	signin signinLinks // one-time studio sign-in links

	// streams ends when the server shuts down, ending followed log
	// streams, which would otherwise hold the drain for its whole timeout.
	streams      context.Context
	closeStreams context.CancelFunc
}

// CloseStreams ends every followed log stream (call it when shutting down).
func (s *Server) CloseStreams() { s.closeStreams() }

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	s.streams, s.closeStreams = context.WithCancel(context.Background())
	s.routes()
	return s
}

// route is one API route: its pattern (for the mux and the OpenAPI test)
// and handler.
type route struct {
	method, path string
	h            func(http.ResponseWriter, *http.Request) error
}

func (s *Server) table() []route {
	return append([]route{
		{"GET", "/server", s.getServer},
		{"POST", "/artifacts", s.postArtifact},
		{"HEAD", "/artifacts/{digest}", s.headArtifact},
		{"GET", "/artifacts/{digest}", s.getArtifact},
		{"GET", "/artifacts/{digest}/manifest", s.getManifest},
		{"POST", "/models", s.postModel},
		{"GET", "/models", s.listModels},
		{"GET", "/models/{name}/versions/{version}", s.getModel},
		{"PATCH", "/models/{name}/versions/{version}", s.patchModel},
		{"POST", "/models/{name}/versions/{version}/archive", s.archiveModel(true)},
		{"POST", "/models/{name}/versions/{version}/restore", s.archiveModel(false)},
		{"POST", "/models/{name}/archive", s.archiveModel(true)},
		{"POST", "/models/{name}/restore", s.archiveModel(false)},
		{"GET", "/images", s.getImage},
		{"POST", "/images/build", s.postImageBuild},
		{"POST", "/environments", s.postEnvironment},
		{"GET", "/environments", s.listEnvironments},
		{"GET", "/environments/{name}/versions/{version}", s.getEnvironment},
		{"POST", "/environments/{name}/versions/{version}/archive", s.archiveEnvironment(true)},
		{"POST", "/environments/{name}/versions/{version}/restore", s.archiveEnvironment(false)},
		{"POST", "/environments/{name}/archive", s.archiveEnvironment(true)},
		{"POST", "/environments/{name}/restore", s.archiveEnvironment(false)},
		{"POST", "/endpoints", s.postEndpoint},
		{"GET", "/endpoints", s.listEndpoints},
		{"GET", "/endpoints/{endpoint}", s.getEndpoint},
		{"PUT", "/endpoints/{endpoint}", s.putEndpoint},
		{"DELETE", "/endpoints/{endpoint}", s.deleteEndpoint},
		{"GET", "/endpoints/{endpoint}/document", s.getEndpointDocument},
		{"POST", "/endpoints/{endpoint}/listkeys", s.listKeys},
		{"POST", "/endpoints/{endpoint}/regenerateKeys", s.regenerateKeys},
		{"POST", "/endpoints/{endpoint}/token", s.token},
		{"POST", "/endpoints/{endpoint}/revokeTokens", s.revokeTokens},
		{"POST", "/endpoints/{endpoint}/deployments", s.postDeployment},
		{"GET", "/endpoints/{endpoint}/deployments", s.listDeployments},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}", s.getDeployment},
		{"PUT", "/endpoints/{endpoint}/deployments/{deployment}", s.putDeployment},
		{"DELETE", "/endpoints/{endpoint}/deployments/{deployment}", s.deleteDeployment},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}/document", s.getDocument},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}/logs", s.getLogs},
		{"GET", "/endpoints/{endpoint}/deployments/{deployment}/events", s.deploymentEvents},
		{"POST", "/endpoints/{endpoint}/deployments/{deployment}/prewarm", s.prewarm},
		{"GET", "/events", s.listEvents},
		{"POST", "/fsck", s.postFsck},
		{"POST", "/gc", s.postGC},
		{"PUT", "/blobs/{digest}", s.putBlob},
		{"GET", "/endpoints/{endpoint}/snippets", s.getSnippets},
		{"POST", "/signin-links", s.postSigninLink},
	}, s.safeRoutes()...)
}

const prefix = "/api/" + api.Version

func (s *Server) routes() {
	for _, rt := range s.table() {
		h := rt.h
		s.mux.HandleFunc(rt.method+" "+prefix+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if !s.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="plumbline"`)
				s.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "Unauthorized",
					Message: "missing or invalid admin token: send 'Authorization: Bearer <token>' (the token is in the server's data dir, admin.token)"})
				return
			}
			if err := h(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	s.fetchRoutes()
	s.mux.HandleFunc("POST "+prefix+"/signin", s.postSignin) // no admin token: the code is the credential
	s.mux.HandleFunc("GET "+prefix+"/openapi.json", s.openAPI)
	s.mux.HandleFunc(prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFound(r.URL.Path, "no such API route: %s %s (see %s/openapi.json)", r.Method, r.URL.Path, prefix))
	})
}

// ServeHTTP serves /api/v1/….
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authorized checks the admin bearer token in constant time.
func (s *Server) authorized(r *http.Request) bool {
	return auth.AuthorizedBearer(r.Header.Get("Authorization"), s.cfg.AdminToken)
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.cfg.Info)
	return nil
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// maxDocumentBytes bounds endpoint and deployment documents.
const maxDocumentBytes = 1 << 20

func readDocument(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, badRequest("body", "read request body: %v", err)
	}
	if len(b) > maxDocumentBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "PayloadTooLarge", Message: "document larger than 1 MiB"}
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, badRequest("body", "empty document: send the YAML or JSON document in the request body")
	}
	return b, nil
}

// decodeJSON reads a small JSON body strictly.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxDocumentBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body", "invalid JSON body: %v", err)
	}
	return nil
}
