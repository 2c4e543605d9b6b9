package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reqState is everything one request carries through the proxy. It is also
// the upstream request's context (the client's context plus the request
// timeout), so Rewrite, ModifyResponse and ErrorHandler find it without an
// extra context allocation.
type reqState struct {
	context.Context

	g     *Gateway
	in    *http.Request
	start time.Time
	w     statusWriter
	body  bodyReader

	rt           *route
	t            *target
	inst         *instance
	upstreamPath string
	upstreamURI  string    // upstreamPath escaped, for the request line
	requestID    []string  // header value, shared by the response and the upstream request
	clientID     []string  // nil when the client sent none (or nothing survived sanitising)
	ids          [2]string // backing for requestID and clientID: no extra allocations
	mirrorBody   []byte
	// mirrorTaken is the mirror memory taken for mirrorBody, given back by
	// the copy when it is handed one, else when the request ends.
	mirrorTaken int64
	// buffered is the whole request body when it was read before proxying
	// (small bodies, mirrored requests); nil when it streams.
	buffered []byte
	// bodyBuf holds buffered's backing array when it came from bodyBuffers
	// and goes back there once the request is written.
	bodyBuf *[]byte

	// dispatched is when an instance slot was taken.
	dispatched time.Time
	timing     [1]string // backing for the Server-Timing header: no extra allocation

	// Set by ModifyResponse on the request goroutine.
	modelStatus int
	modelReason string
	firstByte   time.Time

	err      error // the error answered, if any
	returned bool  // ServeHTTP returned normally (not an aborted copy)

	// The safe-rollout parts, nil for most requests: a live rollout step's
	// figures, the comparison of a mirrored request, a sampled capture.
	figs    *figSet
	pair    *pairJob
	capture *captureConf
}

type stateKey struct{}

// Value makes the state findable from the upstream request's context.
func (s *reqState) Value(key any) any {
	if key == (stateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// rewrite points the outbound request at the chosen instance and path,
// keeps the query, replaces the tracing headers and drops the client's
// credential.
func rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.Out.Context())
	u := pr.Out.URL
	u.Scheme = "http"
	u.Host, pr.Out.Host = st.inst.host, st.inst.hostHeader
	u.Path = st.upstreamPath
	u.RawPath = ""
	if st.buffered != nil {
		// ReverseProxy wraps the body to keep Close from reaching the
		// inbound one, which hides that it is in memory; hand the transport
		// a body it recognises, so headers and body leave in one write.
		pr.Out.Body = newBytesBody(st.buffered)
	}
	h := pr.Out.Header
	delete(h, hdrAuthorization)
	// The gateway already accepted the body; asking the model for a 100
	// Continue would only add a round trip (or a timeout, if it never sends one).
	delete(h, hdrExpect)
	h[hdrRequestID] = st.requestID
	if st.clientID != nil {
		h[hdrClientRequestID] = st.clientID
	} else {
		delete(h, hdrClientRequestID)
	}
	pr.SetXForwarded()
}

// modifyResponse records the model's status and turns a non-2xx answer into
// Azure's 424, passing the model's body through.
func modifyResponse(res *http.Response) error {
	st := stateOf(res.Request.Context())
	code := res.StatusCode
	st.modelStatus = code
	st.modelReason = reasonPhrase(res)
	st.firstByte = time.Now()
	h := res.Header
	// The gateway owns these; a model cannot forge them.
	delete(h, hdrRequestID)
	delete(h, hdrClientRequestID)
	delete(h, hdrModelDeployment)
	delete(h, hdrModelErrorStatusCode)
	delete(h, hdrModelErrorReason)
	delete(h, hdrPlumblineDeployment)
	delete(h, hdrPlumblineModel)
	delete(h, hdrPlumblineModelDigest)
	setServerTiming(st, h)
	if (code < 200 || code > 299) && code != http.StatusSwitchingProtocols {
		h[hdrModelErrorStatusCode] = []string{codeLabel(code)}
		h[hdrModelErrorReason] = []string{st.modelReason}
		res.StatusCode = http.StatusFailedDependency
		res.Status = "424 Failed Dependency"
	}
	return nil
}

// setServerTiming adds the gateway's Server-Timing to the model's answer
// (after the model's own, if it sent one).
func setServerTiming(st *reqState, h http.Header) {
	v := serverTiming(st)
	if prev := h[hdrServerTiming]; len(prev) > 0 {
		h[hdrServerTiming] = append(prev, v)
		return
	}
	st.timing[0] = v
	h[hdrServerTiming] = st.timing[0:1:1]
}

// serverTiming is the Server-Timing value of a model's answer, in
// milliseconds: queue (receipt to an instance slot: auth, body, queue) and
// model (slot to the model's response headers).
func serverTiming(st *reqState) string {
	var b [64]byte
	out := append(b[:0], "queue;dur="...)
	out = strconv.AppendFloat(out, float64(st.dispatched.Sub(st.start).Microseconds())/1000, 'f', 3, 64)
	out = append(out, ", model;dur="...)
	out = strconv.AppendFloat(out, float64(st.firstByte.Sub(st.dispatched).Microseconds())/1000, 'f', 3, 64)
	return string(out)
}

// reasonPhrase is the model's own reason phrase ("404 Not Found" → "Not
// Found"), or the standard one when it sent none.
func reasonPhrase(res *http.Response) string {
	if _, after, ok := strings.Cut(res.Status, " "); ok && after != "" {
		return after
	}
	return http.StatusText(res.StatusCode)
}

// proxyError answers a failed round trip: 413 or 400 for the client's body,
// 408 for the request timeout, nothing for a client that left, and 502 for a
// connection that failed before the model answered.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	var e error
	switch {
	case st == nil:
		e = &upstreamError{err}
	case st.body.failed.Load() == bodyTooLarge:
		e = errBodyTooLarge
	case st.body.failed.Load() == bodyTooSlow:
		e = errBodyTooSlow
	case context.Cause(st.Context) == errRequestTimeout:
		e = errRequestTimeout
	case st.in.Context().Err() != nil:
		e = errClientGone
	case st.body.failed.Load() == bodyReadFailed:
		e = errBadBody
	default:
		e = &upstreamError{err}
	}
	if st != nil {
		st.err = e
	}
	writeError(w, replyFor(e))
}

// upstreamError is a round trip that failed before the model answered.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string        { return "upstream: " + e.err.Error() }
func (e *upstreamError) Unwrap() []error      { return []error{errUpstream, e.err} }
func (e *upstreamError) Is(target error) bool { return target == errUpstream }

// statusWriter records the status and size of the response, and copies
// its body into tee (up to teeMax bytes) when the request is mirrored or
// captured.
type statusWriter struct {
	http.ResponseWriter
	status  int
	bytes   int64
	teeMax  int
	tee     []byte
	teeBuf  *[]byte // tee's pooled buffer (captured requests), nil otherwise
	teeOver bool    // the body passed teeMax
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	if w.teeMax > 0 {
		w.keep(b[:n])
	}
	return n, err
}

// keep copies written body bytes into tee.
func (w *statusWriter) keep(b []byte) {
	if w.teeOver {
		return
	}
	if len(w.tee)+len(b) > w.teeMax {
		w.teeOver = true
		w.tee = nil
		return
	}
	w.tee = append(w.tee, b...)
}

// Flush lets streamed model output (SSE, chunked) through as it comes.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap serves http.ResponseController (hijacking for upgrades, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Body failure kinds, bodyReader.failed.
const (
	bodyOK uint32 = iota
	bodyTooLarge
	bodyReadFailed
	bodyTooSlow
)

// bodyReader limits the request body to MaxBodyBytes and notes its size and
// when it ended. The transport may read it from its own goroutine while the
// handler inspects it, hence the atomics.
type bodyReader struct {
	rc     io.ReadCloser
	limit  int64
	n      atomic.Int64
	endNs  atomic.Int64 // time.Now().UnixNano() at EOF; 0 until then
	failed atomic.Uint32
	// pace moves the connection's read deadline as bytes arrive; only the
	// goroutine reading the body touches it.
	pace pace
}

func (b *bodyReader) init(rc io.ReadCloser, limit int64) {
	b.rc, b.limit = rc, limit
}

func (b *bodyReader) Read(p []byte) (int, error) {
	switch b.failed.Load() {
	case bodyTooLarge:
		return 0, errBodyTooLarge
	case bodyReadFailed:
		return 0, errBadBody
	case bodyTooSlow:
		return 0, errBodyTooSlow
	}
	// EOF is sticky. The transport reads once more after the body to check
	// its length; by then the server may have closed the inbound body
	// (it does when the response starts), and a read of a closed body
	// fails, which would make the transport tear down the connection
	// while the response is still being copied (golang/go#40747).
	if b.endNs.Load() != 0 {
		return 0, io.EOF
	}
	n0 := b.n.Load()
	if rem := b.limit - n0 + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.rc.Read(p)
	total := b.n.Add(int64(n))
	if total > b.limit {
		b.failed.Store(bodyTooLarge)
		return 0, errBodyTooLarge
	}
	switch {
	case err == io.EOF:
		b.endNs.CompareAndSwap(0, time.Now().UnixNano())
		b.pace.done()
	case err != nil && isTimeout(err):
		b.failed.Store(bodyTooSlow)
		return n, errBodyTooSlow
	case err != nil:
		b.failed.Store(bodyReadFailed)
	default:
		b.pace.set(total)
	}
	return n, err
}

// Close is a no-op: the server owns and closes the inbound body.
func (b *bodyReader) Close() error { return nil }

// readInto reads the whole body, appending it to buf[:0] (grown as needed);
// hint is the Content-Length, -1 if unknown.
func (b *bodyReader) readInto(buf []byte, hint int64) ([]byte, error) {
	buf = buf[:0]
	if want := max(0, min(hint, b.limit)) + 1; int64(cap(buf)) < want {
		buf = make([]byte, 0, want+bytes.MinRead)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := b.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			switch b.failed.Load() {
			case bodyTooLarge:
				return nil, errBodyTooLarge
			case bodyTooSlow:
				return nil, errBodyTooSlow
			}
			return nil, errors.Join(errBadBody, err)
		}
	}
	b.endNs.CompareAndSwap(0, time.Now().UnixNano())
	b.pace.done()
	return buf, nil
}

// bodyBuffers recycles the buffers of small request bodies.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// recycleBody returns the body's buffer to bodyBuffers.
// A captured request's buffer is kept: its capture record takes it.
func (s *reqState) recycleBody() {
	if s.bodyBuf == nil || s.capture != nil {
		return
	}
	recycle(&bodyBuffers, s.bodyBuf, s.buffered)
	s.bodyBuf, s.buffered = nil, nil
}

// size is the number of body bytes read so far.
func (b *bodyReader) size() int64 { return b.n.Load() }

// bufferBodyBytes is the largest request body (with a Content-Length) read
// into memory before it is proxied; larger ones are streamed.
const bufferBodyBytes = 64 << 10

// newBytesBody is a request body over a buffered payload. It must stay an
// io.NopCloser around a *bytes.Reader: net/http recognises that as in
// memory and writes headers and body together.
func newBytesBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// buffers is the proxy's BufferPool: 32 KiB copy buffers, reused.
type buffers struct{}

const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

func (buffers) Get() []byte { return *copyBuffers.Get().(*[]byte) }

func (buffers) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	copyBuffers.Put(&b)
}

// useInstance points the request at inst, with the instance's own routes:
// during a rolling update an old instance keeps the scoring path of the plan
// it runs.
func (st *reqState) useInstance(inst *instance, act action) {
	st.inst, st.dispatched = inst, time.Now()
	st.setProvenance(inst)
	st.upstreamPath, st.upstreamURI = inst.scoringPath, inst.scoringURI
	if act == actionOpenAPI && inst.openAPIPath != "" {
		st.upstreamPath, st.upstreamURI = inst.openAPIPath, inst.openAPIURI
	}
}
