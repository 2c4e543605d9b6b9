package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/store"
)

// Error is an error with its HTTP status and API code, produced by handlers
// for problems they recognise (bad input, missing things, conflicts).
type Error struct {
	Status  int
	Code    string
	Message string
	Target  string
	Details []api.Error
	Err     error // the cause, if any
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func badRequest(target, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "BadArgument", Message: sprintf(format, args...), Target: target}
}

func notFound(target, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "NotFound", Message: sprintf(format, args...), Target: target}
}

func conflict(target, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: "Conflict", Message: sprintf(format, args...), Target: target}
}

// writeError is the one place that maps an error to an HTTP status and an
// API error body. Unknown errors are 500s whose detail goes to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, registry.ErrInvalid):
		e = &Error{Status: http.StatusBadRequest, Code: "BadArgument", Message: err.Error()}
	case errors.Is(err, registry.ErrArtifactNotFound):
		e = &Error{Status: http.StatusNotFound, Code: "NotFound", Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		e = &Error{Status: http.StatusNotFound, Code: "NotFound", Message: err.Error()}
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		e = &Error{Status: http.StatusConflict, Code: "Conflict", Message: err.Error()}
	case errors.Is(err, blob.ErrNoSpace), errors.Is(err, store.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// The client is told the cause (nothing it sent is wrong); the
		// operator is told where.
		s.log.Error("api request failed: disk full", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInsufficientStorage, Code: "InsufficientStorage",
			Message: "the server's disk is full, so nothing was stored: free space on the disk that holds the server's data dir (plumbline gc --dry-run lists what nothing uses), then retry"}
	case errors.Is(err, context.Canceled):
		e = &Error{Status: 499, Code: "Canceled", Message: "request canceled"}
	default:
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "internal error; see the server log"}
	}
	body := api.ErrorResponse{Error: &api.Error{Code: e.Code, Message: e.Message, Target: e.Target, Details: e.Details}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
	if e.Status >= 400 && e.Status < 500 {
		s.log.Debug("api request refused", slog.String("path", r.URL.Path), slog.Int("status", e.Status), slog.String("message", e.Message))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
