package rworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Probe routes the supervisor answers itself when the deployment names none
// (no inference_config): the process driver passes them as the liveness and
// readiness paths, and plumber's /openapi.json stays plumber's.
const (
	OwnLivenessPath  = "/.plumbline/live"
	OwnReadinessPath = "/.plumbline/ready"
)

// maxBody bounds a request or response body the supervisor holds in memory.
const maxBody = 1 << 30

// ServeHTTP answers the probe routes from the workers' state and hands
// every other request to an R worker.
func (s *Supervisor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		switch r.URL.Path {
		case s.cfg.ReadinessPath:
			s.probe(w, true)
			return
		case s.cfg.LivenessPath:
			s.probe(w, false)
			return
		}
	}
	s.forward(w, r)
}

// probeState is what a probe answers, and what the control socket's
// /status reports.
type probeState struct {
	Status     string        `json:"status"`
	Reason     string        `json:"reason,omitempty"`
	Router     string        `json:"router"`
	FastPaths  []string      `json:"fast_paths,omitempty"`
	SessionRSS int64         `json:"session_rss_bytes"`
	Workers    int           `json:"workers"`
	Want       int           `json:"want"`
	Idle       int           `json:"idle"`
	Busy       int           `json:"busy"`
	Stuck      int           `json:"stuck"`
	Forks      int           `json:"forks"`
	LastForkMS float64       `json:"last_fork_ms"`
	Replaced   int64         `json:"replaced"`
	Recycled   int64         `json:"recycled"`
	Detail     []workerState `json:"detail,omitempty"`
}

type workerState struct {
	ID       string  `json:"id"`
	PID      int     `json:"pid"`
	Busy     bool    `json:"busy"`
	BusyMS   float64 `json:"busy_ms,omitempty"`
	Requests int64   `json:"requests"`
	RSS      int64   `json:"rss_bytes"`
}

// state reads the pool. A worker busy past the request timeout is stuck:
// it is about to be killed.
func (s *Supervisor) state(detail bool) probeState {
	now := time.Now().UnixNano()
	limit := int64(s.cfg.RequestTimeout + timeoutGrace)
	s.mu.Lock()
	st := probeState{Router: s.info.Router, FastPaths: s.info.FastPaths, SessionRSS: s.info.RSS, Workers: len(s.workers), Want: s.want,
		Forks: s.forks, LastForkMS: float64(s.lastFork.Microseconds()) / 1000}
	for _, w := range s.workers {
		b := w.busySince.Load()
		ws := workerState{ID: w.id, PID: w.pid, Busy: b != 0, Requests: w.requests.Load()}
		if b != 0 {
			st.Busy++
			ws.BusyMS = float64((now-b)/1000) / 1000
			if now-b > limit {
				st.Stuck++
			}
		}
		if detail {
			ws.RSS = w.rss()
			st.Detail = append(st.Detail, ws)
		}
	}
	s.mu.Unlock()
	st.Idle = st.Workers - st.Busy
	st.Replaced, st.Recycled = s.replaced.Load(), s.recycled.Load()
	return st
}

// probe answers liveness (ready=false) or readiness from the pool, at once:
// never queued behind a request.
//
// Alive: the loaded session runs and not every worker is stuck.
// Ready: alive, the user's probe routes passed once at start-up, and a
// worker is up that is not stuck.
func (s *Supervisor) probe(w http.ResponseWriter, ready bool) {
	st := s.state(false)
	code := http.StatusOK
	switch {
	case s.stopping.Load():
		st.Status, st.Reason, code = "stopping", "the instance is stopping", http.StatusServiceUnavailable
	case !s.sess.alive():
		st.Status, st.Reason, code = "dead", "the loaded R session has exited", http.StatusServiceUnavailable
	case st.Workers > 0 && st.Stuck == st.Workers:
		st.Status, st.Reason, code = "stuck", "every worker is past the request timeout", http.StatusServiceUnavailable
	case !ready:
		st.Status = "alive"
	case !s.ready.Load():
		st.Status, st.Reason, code = "starting", "the start-up probes of plumber.R have not passed yet", http.StatusServiceUnavailable
	case st.Workers-st.Stuck < 1:
		st.Status, st.Reason, code = "starting", "no worker is up yet", http.StatusServiceUnavailable
	default:
		st.Status = "ready"
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// errorJSON answers an error of the supervisor's own, in the shape of
// plumber's errors.
func errorJSON(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// forward runs one request on a worker and writes its answer.
func (s *Supervisor) forward(w http.ResponseWriter, r *http.Request) {
	var tm *stageTimes
	if s.cfg.Timing {
		tm = &stageTimes{start: time.Now()}
	}
	if mx := s.info.MaxRequest; mx > 0 && (r.ContentLength > mx || (r.ContentLength < 0 && len(r.TransferEncoding) > 0)) {
		// What plumber's onHeaders answers past plumber.maxRequestSize.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "Maximum upload size exceeded")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			errorJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", int64(maxBody)))
		}
		return // the client went away
	}
	bufp, _ := s.framePool.Get().(*[]byte)
	if bufp == nil {
		bufp = new([]byte)
	}
	frame := appendRequest((*bufp)[:0], headOf(r, s.host, s.port), body)
	if tm != nil {
		tm.framed = time.Now()
	}
	res, status, msg := s.run(r.Context(), frame, tm)
	*bufp = frame
	if cap(frame) <= 1<<20 {
		s.framePool.Put(bufp)
	}
	if status != 0 {
		if status > 0 {
			errorJSON(w, status, msg)
		}
		return
	}
	h := w.Header()
	hasType := false
	for _, kv := range res.Header {
		if tm != nil && kv[0] == timingHeader {
			h.Add("Server-Timing", tm.serverTiming(kv[1]))
			continue
		}
		name := http.CanonicalHeaderKey(kv[0])
		switch name {
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Trailer":
			continue
		case "Content-Type":
			hasType = true
		}
		h.Add(name, kv[1])
	}
	if !hasType {
		h["Content-Type"] = nil // no sniffing: plumber's server adds none either
	}
	code := res.Status
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(code)
	_, _ = w.Write(res.Body)
}

// run hands a request frame to a worker. status is 0 when res holds the
// worker's answer; otherwise the HTTP status of the supervisor's own
// answer (with msg), or -1 when the client has gone and nothing should be
// written.
func (s *Supervisor) run(ctx context.Context, frame []byte, tm *stageTimes) (res response, status int, msg string) {
	wk, err := s.acquire(ctx)
	if tm != nil {
		tm.acquired = time.Now()
	}
	if err != nil {
		if ctx.Err() != nil {
			return res, -1, ""
		}
		return res, http.StatusServiceUnavailable, err.Error()
	}
	// The worker gets until the deadline even when the client goes away
	// sooner (the gateway at its own request timeout, a client that hangs
	// up): R cannot be interrupted, and a worker that finishes is worth
	// keeping. Only past the deadline is it killed.
	deadline := time.Now().Add(s.cfg.RequestTimeout + timeoutGrace)
	res, err = wk.exchange(context.WithoutCancel(ctx), frame, deadline, maxBody, tm)
	switch {
	case err == nil:
		s.release(wk)
		if ctx.Err() != nil {
			return res, -1, ""
		}
		return res, 0, ""
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.fail(wk, fmt.Sprintf("its request ran past the request timeout (%s)", s.cfg.RequestTimeout))
		return res, http.StatusGatewayTimeout, fmt.Sprintf("the request ran past the request timeout (%s); the R worker serving it was stopped and is replaced", s.cfg.RequestTimeout)
	default:
		s.fail(wk, "it ended while serving a request: "+err.Error())
		return res, http.StatusBadGateway, "the R worker serving this request ended before answering (it crashed or was killed); it is replaced"
	}
}

// startupChecks runs the deployment's own probe routes through a worker,
// liveness then readiness, every 200 ms until each answers 2xx or 3xx (as
// the seed's plumber.R comments describe: ready once the model is loaded);
// then the supervisor's readiness turns ready.
func (s *Supervisor) startupChecks(ctx context.Context) {
	var paths []string
	for _, p := range []string{s.cfg.LivenessPath, s.cfg.ReadinessPath} {
		if p != "" && p != OwnLivenessPath && p != OwnReadinessPath && (len(paths) == 0 || paths[0] != p) {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		path, query, _ := strings.Cut(p, "?")
		head := requestHead{Method: http.MethodGet, Path: path, Query: query, RemoteAddr: "127.0.0.1", RemotePort: "0",
			ServerName: s.host, ServerPort: s.port, Host: net.JoinHostPort(s.host, s.port),
			Header: http.Header{"User-Agent": {"plumbline-probe"}}}
		frame := appendRequest(nil, head, nil)
		logged := false
		for {
			res, status, msg := s.run(ctx, frame, nil)
			if ctx.Err() != nil {
				return
			}
			if status == 0 && res.Status >= 200 && res.Status < 400 {
				break
			}
			if !logged {
				if status == 0 {
					msg = fmt.Sprintf("answered %d: %.200s", res.Status, res.Body)
				}
				s.log.Info("start-up probe of plumber.R not passed yet; retrying every 200ms", "path", p, "result", msg)
				logged = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	s.ready.Store(true)
	s.log.Info("ready", "workers", s.cfg.Workers, "startup_probes", paths)
}

// maxSocketPath is the longest unix socket path Linux binds (sun_path is
// 108 bytes with its terminating NUL).
const maxSocketPath = 107

// ControlSocket returns the path of the control socket of the supervisor
// whose Dir is dir: Dir/control.sock, or, when that path is too long for a
// unix socket, the path written in Dir/control.addr.
func ControlSocket(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "control.addr")); err == nil {
		return strings.TrimSpace(string(b))
	}
	return filepath.Join(dir, "control.sock")
}

// serveControl serves the control socket (ControlSocket; mode 0600 in a
// 0700 folder): GET /status reports the pool with each worker's state;
// PUT /workers?n=N resizes it and answers once N workers are ready.
func (s *Supervisor) serveControl() (io.Closer, error) {
	path := filepath.Join(s.cfg.Dir, "control.sock")
	var cleanup func()
	if len(path) > maxSocketPath {
		short, err := os.MkdirTemp("", "plumbline-rworker-")
		if err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		cleanup = func() { os.RemoveAll(short) }
		path = filepath.Join(short, "control.sock")
		if err := os.WriteFile(filepath.Join(s.cfg.Dir, "control.addr"), []byte(path+"\n"), 0o600); err != nil {
			cleanup()
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		if cleanup != nil {
			cleanup()
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.state(true))
	})
	mux.HandleFunc("PUT /workers", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			errorJSON(w, http.StatusBadRequest, "give the number of workers: PUT /workers?n=N")
			return
		}
		t0 := time.Now()
		if err := s.Resize(r.Context(), n); err != nil {
			errorJSON(w, http.StatusBadRequest, err.Error())
			return
		}
		st := s.state(true)
		writeJSON(w, http.StatusOK, map[string]any{"took_ms": float64(time.Since(t0).Microseconds()) / 1000, "state": st})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return closerFunc(func() error {
		err := srv.Close()
		if cleanup != nil {
			cleanup()
		}
		return err
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
