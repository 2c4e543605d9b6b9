package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// maxMirrorDrain is how much of a mirrored response is read (and dropped) so
// that its connection can be reused; past it the connection is closed.
const maxMirrorDrain = 1 << 20

// mirror copies a live request to t in the background. The copy takes a
// slot of the bounded mirror backlog, or is dropped and counted when none is
// free; it never delays or fails the live request. The body was buffered
// once by the caller and is shared read-only.
func (g *Gateway) mirror(t *target, r *http.Request, st *reqState) {
	pm := t.pool.m
	// The copy owns the body's share of the mirror memory from here: it
	// gives it back when it is done (or now, when it is dropped).
	taken := st.mirrorTaken
	st.mirrorTaken = 0
	release := func() { g.mirrorMem.give(taken) }
	if g.closed.Load() {
		pm.mirrorDropped.Inc()
		release()
		st.pairDropped()
		return
	}
	select {
	case g.mirrorSlots <- struct{}{}:
	default:
		pm.mirrorDropped.Inc()
		release()
		st.pairDropped()
		return
	}
	h := r.Header.Clone()
	delete(h, hdrAuthorization)
	delete(h, hdrModelDeployment)
	delete(h, hdrExpect)
	// Hop-by-hop headers belong to the client's connection, not the copy
	// (ReverseProxy drops them for the live request).
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	h[hdrRequestID] = st.requestID
	if st.clientID != nil {
		h[hdrClientRequestID] = st.clientID
	} else {
		delete(h, hdrClientRequestID)
	}
	job := &mirrorJob{
		release: release,
		t:       t,
		method:  r.Method,
		query:   r.URL.RawQuery,
		header:  h,
		body:    st.mirrorBody,
		pair:    st.pair,
	}
	go g.runMirror(job)
}

// mirrorJob is one mirrored copy, detached from the live request.
type mirrorJob struct {
	release func() // gives back the body's mirror memory
	t       *target
	method  string
	query   string
	header  http.Header
	body    []byte
	pair    *pairJob // its comparison with the live answer (shadow.go), or nil
}

// runMirror sends one copy through the mirror deployment's own admission
// (its limits apply to shadow traffic too) and hands the answer to the
// comparison (or discards it).
func (g *Gateway) runMirror(job *mirrorJob) {
	defer func() { <-g.mirrorSlots }()
	defer job.release()
	pm := job.t.pool.m
	start := time.Now()
	if job.t.contract != nil {
		// What the shadow's input contract would refuse never reaches it.
		if err := checkContract(job.t, job.body); err != nil {
			if job.pair != nil {
				job.pair.shadowRefused()
			}
			return
		}
	}
	defer func() {
		// A copy must never take the server down with it.
		if p := recover(); p != nil {
			pm.mirrorError.Inc()
			if g.log != nil {
				g.log.Error("mirror copy panicked", "endpoint", job.t.endpoint, "deployment", job.t.name,
					"panic", p, "stack", string(debug.Stack()))
			}
		}
	}()

	ctx, cancel := context.WithTimeoutCause(context.Background(), job.t.timeout, errRequestTimeout)
	defer cancel()
	inst, err := job.t.pool.acquire(ctx)
	if err != nil {
		if errors.Is(err, errQueueFull) || errors.Is(err, errNoInstance) || errors.Is(err, errQueueWait) {
			pm.mirrorDropped.Inc()
			if job.pair != nil {
				job.pair.shadowDropped()
			}
		} else {
			pm.mirrorError.Inc()
			if job.pair != nil {
				job.pair.shadowAnswered(http.StatusRequestTimeout, start, nil, "")
			}
		}
		return
	}
	defer job.t.pool.release(inst)

	req := (&http.Request{
		Method:        job.method,
		URL:           &url.URL{Scheme: "http", Host: inst.host, Path: inst.scoringPath, RawQuery: job.query},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        job.header,
		Host:          inst.hostHeader,
		ContentLength: int64(len(job.body)),
	}).WithContext(ctx)
	if len(job.body) > 0 {
		req.Body = newBytesBody(job.body)
		req.GetBody = func() (io.ReadCloser, error) { return newBytesBody(job.body), nil }
	}
	res, err := g.transport.RoundTrip(req)
	if err != nil {
		pm.mirrorError.Inc()
		if job.pair != nil {
			status := http.StatusBadGateway
			if ctx.Err() != nil {
				status = http.StatusRequestTimeout
			}
			job.pair.shadowAnswered(status, start, nil, "")
		}
		return
	}
	if job.pair != nil {
		status := res.StatusCode
		if status < 200 || status > 299 {
			status = http.StatusFailedDependency // as the gateway answers a model's error
		}
		job.pair.shadowAnswered(status, start, res.Body, res.Header.Get("Content-Encoding"))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxMirrorDrain))
	_ = res.Body.Close()
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		pm.mirrorSent.Inc()
	} else {
		pm.mirrorError.Inc()
	}
}

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 (and the
// legacy ones ReverseProxy also drops).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
