package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/registry"
)

// minAge parses a request's min_age ("" means the registry's default).
func minAge(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest(field, "min_age %q: want a duration such as 1h, 30m or 0s", s)
	}
	if d == 0 {
		return -1, nil // the registry's "no minimum"
	}
	return d, nil
}

// fsckLine is one line of /fsck's answer; api.FsckLine decodes it (the
// registry's report has the same JSON shape as api.FsckReport).
type fsckLine struct {
	Progress *api.FsckProgress    `json:"progress,omitempty"`
	Report   *registry.FsckReport `json:"report,omitempty"`
	Error    *api.Error           `json:"error,omitempty"`
}

// postFsck checks the blob store and the cache against the store, streaming
// progress as newline-delimited JSON while blobs are hashed (a large
// registry takes minutes), then the report.
func (s *Server) postFsck(w http.ResponseWriter, r *http.Request) error {
	var in api.FsckRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	age, err := minAge("min_age", in.MinAge)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var mu sync.Mutex // protects enc and last
	var last time.Time
	progress := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done < total && time.Since(last) < 500*time.Millisecond {
			return
		}
		last = time.Now()
		_ = enc.Encode(fsckLine{Progress: &api.FsckProgress{Done: done, Total: total}})
		_ = rc.Flush()
	}
	rep, err := s.cfg.Registry.Fsck(r.Context(), registry.FsckOptions{Repair: in.Repair, MinAge: age, Progress: progress})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		s.log.Error("fsck failed", "err", err)
		_ = enc.Encode(fsckLine{Error: &api.Error{Code: "InternalServerError", Message: err.Error()}})
		return nil
	}
	for _, p := range rep.Problems {
		if p.Repaired {
			s.log.Info("fsck repaired", "kind", p.Kind, "digest", p.Digest, "path", p.Path, "action", p.Action)
		} else {
			s.log.Warn("fsck found", "kind", p.Kind, "digest", p.Digest, "path", p.Path, "detail", p.Detail, "used_by", p.UsedBy)
		}
	}
	if in.Repair {
		s.cfg.Runtime.Notify() // deployments waiting on a repaired blob try again
	}
	_ = enc.Encode(fsckLine{Report: &rep})
	return nil
}

func (s *Server) postGC(w http.ResponseWriter, r *http.Request) error {
	var in api.GCRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	age, err := minAge("min_age", in.MinAge)
	if err != nil {
		return err
	}
	rep, err := s.cfg.Registry.GC(r.Context(), registry.GCOptions{DryRun: in.DryRun, MinAge: age})
	if errors.Is(err, registry.ErrGCUnsafe) {
		return &Error{Status: http.StatusConflict, Code: "Conflict", Message: err.Error(), Err: err}
	}
	if err != nil {
		return err
	}
	if !rep.DryRun && len(rep.Items) > 0 {
		s.log.Info("garbage collected", "items", len(rep.Items), "bytes", rep.Bytes)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// putBlob stores bytes that must hash to the digest in the path: how a
// client repairs a corrupt or missing blob from its own copy. 200 when the
// blob was already right (the body is not read), 201 when stored.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) error {
	d := r.PathValue("digest")
	if err := blob.CheckDigest(d); err != nil {
		return badRequest("digest", "%v", err)
	}
	blobs := s.cfg.Registry.Blobs()
	if blobs.Check(r.Context(), d) == nil {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if _, err := blobs.PutDigest(r.Context(), r.Body, d); err != nil {
		if errors.Is(err, blob.ErrDigestMismatch) {
			return badRequest("body", "%v: send the file whose sha256 is the digest in the URL", err)
		}
		return err
	}
	s.log.Info("blob stored from a client's copy", "digest", d)
	w.WriteHeader(http.StatusCreated)
	return nil
}
