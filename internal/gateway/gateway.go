package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/auth"
)

// TokenVerifier checks an aml_token for one endpoint: its name, identity
// and token generation (Endpoint.ID, Endpoint.TokenGeneration).
// auth.TokenIssuer satisfies it. An error wrapping auth.ErrTokenExpired is
// reported to the client as "token expired"; any other error as "invalid
// credentials".
type TokenVerifier interface {
	VerifyToken(sub auth.Subject, token string) error
}

// OIDCVerifier checks an aad_token (an OpenID Connect access token).
// auth.OIDCVerifier satisfies it; errors are reported as for TokenVerifier.
type OIDCVerifier interface {
	Verify(ctx context.Context, rawToken string) error
}

// Defaults for the zero values of Config.
const (
	DefaultMaxBodyBytes = 100 << 20 // 100 MiB
	DefaultMirrorQueue  = 64
)

// Config configures a Gateway. The zero value is usable.
type Config struct {
	// Domains are the suffixes of host-based scoring URIs: a request for
	// <endpoint>.<domain>[:port]/score scores <endpoint>. If empty,
	// ["localhost"], so http://<endpoint>.localhost:<port>/score works out of
	// the box. Path-based URIs, /endpoints/<endpoint>/score, work on any host.
	Domains []string

	// MaxBodyBytes bounds a request body; larger requests get 413. If zero,
	// DefaultMaxBodyBytes (100 MiB). Mirrored requests are buffered up to
	// this size.
	MaxBodyBytes int64

	// Tokens verifies aml_token credentials. If nil, endpoints in aml_token
	// mode refuse every request with 401.
	Tokens TokenVerifier

	// OIDC verifies aad_token credentials. If nil, endpoints in aad_token
	// mode answer 401 "aad_token is not configured on this server".
	OIDC OIDCVerifier

	// Registerer receives the gateway's metrics. If nil, they are kept in a
	// private registry that nothing exposes.
	Registerer prometheus.Registerer

	// Logger receives one access-log line per request (Info, message
	// "scoring request", the fields of Azure's AmlOnlineEndpointTrafficLog)
	// unless AccessLog is set, and proxy errors (Warn). If nil, nothing is
	// logged.
	Logger *slog.Logger

	// AccessLog, if set, receives the access log instead of Logger: the
	// same lines, encoded without allocating and written in batches off
	// the request goroutine (NewAccessLog). Its owner closes it after
	// Shutdown.
	AccessLog *AccessLog

	// Transport, if set, carries every request to instances through
	// httputil.ReverseProxy (tests, special deployments). If nil, the
	// gateway's own HTTP/1.1 client carries them, and NewUpstreamTransport()
	// carries mirrored copies, upgrades and streamed bodies.
	Transport http.RoundTripper

	// MirrorQueue bounds the mirrored copies waiting or in flight; when it is
	// full a copy is dropped and counted. If zero, DefaultMirrorQueue (64).
	MirrorQueue int

	// CompareQueue bounds the mirrored pairs waiting to be compared; when
	// it is full a pair is dropped and counted. If zero,
	// DefaultCompareQueue.
	CompareQueue int

	// Capture receives the captured request/response pairs of deployments
	// with Capture set, redacted. If nil, they are counted as failed.
	Capture CaptureSink

	// CaptureQueue bounds the captured records waiting to be written;
	// when it is full a record is dropped and counted. If zero,
	// DefaultCaptureQueue.
	CaptureQueue int

	// HashKey keys the hash of capture's hash rules (HMAC-SHA256), at least
	// 16 bytes; gateways sharing a store should share it, so hashes join.
	// If empty, hash rules leave their bodies out.
	HashKey []byte

	// MirrorMemoryBytes bounds, gateway-wide, the request bodies held for
	// mirrored copies (read whole, shared by the live request and its copy
	// until the copy is done). A request whose body does not fit is not
	// mirrored (the copy is dropped and counted) and is proxied as if
	// there were no mirror. Zero: DefaultMirrorMemoryBytes (64 MiB);
	// negative: nothing is mirrored.
	MirrorMemoryBytes int64

	// BodyBufferBytes bounds, per deployment, the request bodies over
	// 64 KiB that are read whole before an instance slot is taken (those of
	// 64 KiB and less always are): a slow client then never holds a slot.
	// A body that does not fit is streamed to the instance, its rate held
	// to MinBodyRate. Zero: DefaultBodyBufferBytes (32 MiB); negative:
	// only bodies of 64 KiB and less are read first.
	BodyBufferBytes int64

	// MinBodyRate is the slowest (bytes per second) a request body may
	// arrive: a body must be in within BodyGrace plus its size at this rate,
	// or the request gets 408 and its connection is closed. Zero:
	// DefaultMinBodyRate (8 KiB/s); negative: no minimum.
	MinBodyRate int64
	// BodyGrace is the time any body gets before MinBodyRate counts. Zero:
	// DefaultBodyGrace (5 s).
	BodyGrace time.Duration
}

// Gateway is the scoring data plane. It is an http.Handler; Update swaps its
// routing table. Safe for concurrent use.
type Gateway struct {
	domains   []string
	maxBody   int64
	tokens    TokenVerifier
	oidc      OIDCVerifier
	log       *slog.Logger // nil: no access log (unless alog) and no proxy errors
	alog      *AccessLog   // nil: the access log goes to log
	transport http.RoundTripper
	// up is the gateway's own client to instances (upstream.go); nil when
	// Config.Transport is set, and then every request goes through proxy.
	up      *upstream
	proxy   *httputil.ReverseProxy
	metrics *metrics

	// table is the routing table a request reads once, for its whole life.
	table atomic.Pointer[table]

	versionMu sync.Mutex // protects version; serialises Apply
	version   int64      // of the last table Apply swapped in

	mu sync.Mutex // protects pools and draining; serialises Update
	// pools are the deployments of the current table, by endpoint + "/" +
	// deployment (lower-case).
	pools map[string]*pool
	// draining are pools of deployments that left the table while requests
	// were still in flight on them; kept for InFlight until they are idle.
	draining map[string][]*pool

	// wakeReport asks Follow's reporter to report now (a request waits
	// at a deployment with no ready instance); capacity 1.
	wakeReport chan struct{}

	// mirrorSlots is the bounded mirror backlog: a copy takes a slot for as
	// long as it waits or runs. Shutdown drains by taking every slot.
	mirrorSlots chan struct{}
	// mirrorMem is the memory budget of mirrored bodies.
	mirrorMem budget
	// bodyBuffer is each deployment pool's budget of bodies read first.
	bodyBuffer int64
	minRate    int64
	bodyGrace  time.Duration
	closed     atomic.Bool
	shutdownMu sync.Mutex // protects slotsHeld; serialises Shutdown
	slotsHeld  int        // mirror slots Shutdown has taken

	// The safe-rollout parts (safety.go, shadow.go, capture.go).
	book        *book
	smetrics    *safetyMetrics
	compareQ    chan *pairJob
	captureQ    chan *CaptureRecord
	capture     CaptureSink
	hashKey     []byte
	rules       rulesCache
	workersOnce sync.Once
}

// New returns a Gateway with an empty routing table: every scoring request
// gets 404 until the first Update.
func New(cfg Config) (*Gateway, error) {
	g := &Gateway{
		maxBody:    cfg.MaxBodyBytes,
		tokens:     cfg.Tokens,
		oidc:       cfg.OIDC,
		log:        cfg.Logger,
		alog:       cfg.AccessLog,
		transport:  cfg.Transport,
		pools:      make(map[string]*pool),
		draining:   make(map[string][]*pool),
		wakeReport: make(chan struct{}, 1),
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	for _, d := range cfg.Domains {
		d = strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
		if d != "" {
			g.domains = append(g.domains, d)
		}
	}
	if len(g.domains) == 0 {
		g.domains = []string{"localhost"}
	}
	if g.transport == nil {
		g.transport = NewUpstreamTransport()
		g.up = newUpstream()
	}
	n := cfg.MirrorQueue
	if n <= 0 {
		n = DefaultMirrorQueue
	}
	g.mirrorSlots = make(chan struct{}, n)
	g.mirrorMem.limit = orDefault(cfg.MirrorMemoryBytes, DefaultMirrorMemoryBytes)
	g.bodyBuffer = orDefault(cfg.BodyBufferBytes, DefaultBodyBufferBytes)
	g.minRate = orDefault(cfg.MinBodyRate, DefaultMinBodyRate)
	g.bodyGrace = orDefault(cfg.BodyGrace, DefaultBodyGrace)
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if g.smetrics, err = newSafetyMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	g.book = newBook()
	g.compareQ = make(chan *pairJob, cmp.Or(max(0, cfg.CompareQueue), DefaultCompareQueue))
	g.captureQ = make(chan *CaptureRecord, cmp.Or(max(0, cfg.CaptureQueue), DefaultCaptureQueue))
	g.capture = cfg.Capture
	if len(cfg.HashKey) >= 16 {
		g.hashKey = cfg.HashKey
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      g.transport,
		BufferPool:     buffers{},
		ModifyResponse: modifyResponse,
		ErrorHandler:   proxyError,
		ErrorLog:       proxyLogger(cfg.Logger),
	}
	g.table.Store(&table{})
	return g, nil
}

func proxyLogger(l *slog.Logger) *log.Logger {
	if l == nil {
		return log.New(discard{}, "", 0)
	}
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Update swaps in s as the routing table. Requests already admitted keep the
// snapshot they started with; pools carry over by endpoint and deployment
// name, so in-flight and queued requests survive. A nil s empties the table.
func (g *Gateway) Update(s *Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := &table{endpoints: make(map[string]*route)}
	live := make(map[string]bool, len(g.pools))
	poolFor := func(endpoint, dname string, d *Deployment) *pool {
		key := endpoint + "/" + dname
		p := g.pools[key]
		if p == nil {
			p = newPool(endpoint, dname, g.metrics.forPool(endpoint, dname))
			p.wake = g.wake
			p.bodies.limit = g.bodyBuffer
			g.pools[key] = p
		}
		p.update(d)
		live[key] = true
		return p
	}
	if s != nil {
		for _, ep := range s.Endpoints {
			if ep == nil || ep.Name == "" {
				continue
			}
			rt := compileRoute(ep, poolFor)
			g.attachSafety(rt, ep)
			next.endpoints[rt.name] = rt
		}
	}
	g.table.Store(next)
	for key, p := range g.pools {
		if !live[key] {
			delete(g.pools, key)
			p.retire()
			g.metrics.forget(p.endpoint, p.deployment)
			g.draining[key] = append(g.draining[key], p)
		}
	}
	g.pruneDrainingLocked()
}

// pruneDrainingLocked forgets retired pools with nothing in flight.
func (g *Gateway) pruneDrainingLocked() {
	for key, ps := range g.draining {
		ps = slices.DeleteFunc(ps, func(p *pool) bool { return p.idle() })
		if len(ps) == 0 {
			delete(g.draining, key)
		} else {
			g.draining[key] = ps
		}
	}
}

// InFlight returns the number of requests in flight on the named instance of
// a deployment, including requests that started before a snapshot removed
// the instance or the deployment. The reconciler waits for zero before it
// stops an instance.
func (g *Gateway) InFlight(endpoint, deployment, instance string) int {
	key := strings.ToLower(endpoint) + "/" + strings.ToLower(deployment)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneDrainingLocked()
	n := 0
	if p := g.pools[key]; p != nil {
		n += p.inflightOn(instance)
	}
	for _, p := range g.draining[key] {
		n += p.inflightOn(instance)
	}
	return n
}

// wake asks for a report now. It never blocks.
func (g *Gateway) wake() {
	select {
	case g.wakeReport <- struct{}{}:
	default:
	}
}

// Demand returns each deployment's load as this gateway sees it, keyed
// "endpoint/deployment" (lower-case): what the autoscaler sums over the
// gateways.
func (g *Gateway) Demand() map[string]Demand {
	g.mu.Lock()
	pools := make([]*pool, 0, len(g.pools))
	for _, p := range g.pools {
		pools = append(pools, p)
	}
	g.mu.Unlock()
	now := time.Now()
	out := make(map[string]Demand, len(pools))
	for _, p := range pools {
		out[strings.ToLower(p.endpoint+"/"+p.deployment)] = p.demand(now)
	}
	return out
}

// Stats returns each deployment's queue depth, in-flight count and ready
// instances, for a UI. It takes each pool's lock briefly.
func (g *Gateway) Stats() []DeploymentStats {
	g.mu.Lock()
	pools := make([]*pool, 0, len(g.pools))
	for _, p := range g.pools {
		pools = append(pools, p)
	}
	g.mu.Unlock()
	out := make([]DeploymentStats, 0, len(pools))
	for _, p := range pools {
		out = append(out, p.stats())
	}
	return out
}

// Shutdown stops accepting mirror copies and waits until the ones under way
// finish or ctx ends. Serve scoring traffic from an http.Server and call its
// Shutdown first; the gateway holds no other background work.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.closed.Store(true)
	g.shutdownMu.Lock()
	defer g.shutdownMu.Unlock()
	// Every slot taken means no copy waits or runs; later copies are dropped.
	for g.slotsHeld < cap(g.mirrorSlots) {
		select {
		case g.mirrorSlots <- struct{}{}:
			g.slotsHeld++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ServeHTTP serves a scoring request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{g: g, in: r, start: time.Now()}
	st.Context = r.Context()
	st.w.ResponseWriter = w
	st.ids[0] = newRequestID()
	st.requestID = st.ids[0:1:1]
	if v := r.Header[hdrClientRequestID]; len(v) > 0 {
		if id := sanitizeClientRequestID(v[0]); id != "" {
			st.ids[1] = id
			st.clientID = st.ids[1:2:2]
		}
	}
	h := w.Header()
	h[hdrRequestID] = st.requestID
	if st.clientID != nil {
		h[hdrClientRequestID] = st.clientID
	}
	defer g.finish(st)
	defer func() { g.mirrorMem.give(st.mirrorTaken) }() // not handed to a copy
	if err := g.serve(st, r); err != nil {
		st.err = err
		writeError(&st.w, replyFor(err))
	}
	st.returned = true
}

// serve routes, authenticates, admits and proxies one request. An error it
// returns has not been written yet.
func (g *Gateway) serve(st *reqState, r *http.Request) error {
	tbl := g.table.Load()
	name, act, ok := parsePath(r.URL.Path)
	if !ok {
		act, ok = actionOf(r.URL.Path)
		if ok {
			name, ok = parseHost(r.Host, g.domains)
		}
		if !ok {
			return errNotScoringPath
		}
	}
	rt := tbl.endpoints[name]
	if rt == nil {
		return errUnknownEndpoint
	}
	st.rt = rt
	if err := g.authenticate(r.Context(), rt, r); err != nil {
		return err
	}
	if r.ContentLength > g.maxBody {
		return errBodyTooLarge
	}

	if act == actionPrototype {
		t, err := rt.primary(r)
		if err != nil {
			return err
		}
		st.t = t
		return serveContractDoc(st, t, act)
	}

	var t, mirror *target
	if v := r.Header[hdrModelDeployment]; len(v) > 0 && v[0] != "" {
		name := strings.ToLower(strings.TrimSpace(v[0]))
		if t = rt.targets[name]; t == nil {
			return newUnknownDeploymentError(name)
		}
	} else {
		if t = rt.pick(); t == nil {
			return errNoPositiveWeight
		}
		if rt.guard != nil && act == actionScore && t.name == rt.guard.cand && !rt.guard.admit() {
			t = rt.pickFallback() // the candidate's sample is still being judged, or failed here
		}
		if act == actionScore {
			mirror = rt.mirrorTarget()
		}
	}
	st.t = t
	st.w.Header()[hdrModelDeployment] = t.nameHeader
	st.w.Header()[hdrPlumblineDeployment] = t.nameHeader
	st.upstreamPath, st.upstreamURI = t.scoringPath, t.scoringURI
	if act == actionScore {
		if rt.figs != nil {
			st.figs = rt.figs
		}
		if t.capture != nil && t.capture.sample() {
			st.startCapture(t.capture)
		}
	}
	if act == actionOpenAPI && t.contract != nil {
		return serveContractDoc(st, t, act)
	}
	if act == actionOpenAPI {
		if t.openAPIPath == "" {
			return errNoOpenAPI
		}
		st.upstreamPath, st.upstreamURI = t.openAPIPath, t.openAPIURI
	}

	if r.Body != nil && r.Body != http.NoBody {
		st.body.init(r.Body, g.maxBody)
		st.body.pace.init(st.w.ResponseWriter, g.minRate, g.bodyGrace)
		r.Body = &st.body
		size := r.ContentLength
		// A mirrored body is read whole and held until its copy is done:
		// it must fit the gateway's mirror memory, or it is not mirrored.
		if mirror != nil && size > 0 {
			if !g.mirrorMem.take(size) {
				mirror.pool.m.mirrorDropped.Inc()
				mirror = nil
			} else {
				st.mirrorTaken = size
			}
		}
		// Bodies are read before an instance slot is taken: a slow client
		// never holds a slot of a one-request-at-a-time R server, and the
		// transport, seeing a body in memory, sends headers and body in one
		// write instead of two (it flushes the headers first for a streamed
		// body), which halves the reads the model server makes. Small ones
		// always; larger ones while the deployment's budget lasts.
		small := size >= 0 && size <= bufferBodyBytes
		if !small && mirror == nil && t.contract == nil && size > 0 && t.pool.bodies.take(size) {
			defer t.pool.bodies.give(size)
			small = true
		}
		// A captured body is read whole too, up to the capture's limit.
		if st.capture != nil && size >= 0 && size <= int64(st.capture.maxBody) {
			small = true
		}
		if mirror != nil || t.contract != nil || small {
			var into []byte
			if mirror == nil { // a mirrored body outlives the request: not pooled (a captured one goes back once written)
				st.bodyBuf = bodyBuffers.Get().(*[]byte)
				into = *st.bodyBuf
			}
			buf, err := st.body.readInto(into, size)
			if err != nil {
				return err
			}
			st.buffered = buf
			if mirror != nil && size < 0 { // a chunked body: its size is known now
				if g.mirrorMem.take(int64(len(buf))) {
					st.mirrorTaken = int64(len(buf))
				} else {
					mirror.pool.m.mirrorDropped.Inc()
					mirror = nil
				}
			}
			if mirror != nil {
				st.mirrorBody = buf
			}
		}
	}
	if t.contract != nil && act == actionScore {
		if err := checkContract(t, st.buffered); err != nil {
			return err
		}
	}
	if mirror != nil {
		st.pair = g.newPair(rt, t, mirror, st)
		g.mirror(mirror, r, st)
	}

	if g.direct(st, r) {
		// The timeout counts from admission, queue included.
		now := time.Now()
		deadline := now.Add(t.timeout)
		inst, err := t.pool.tryAcquire(now)
		if inst == nil && err == nil {
			ctx, cancel := context.WithDeadlineCause(r.Context(), deadline, errRequestTimeout)
			defer cancel()
			inst, err = t.pool.acquire(ctx)
		}
		if err != nil {
			return admissionError(err, r)
		}
		defer t.pool.release(inst)
		st.useInstance(inst, act)
		err = g.forward(st, r, inst, deadline)
		st.recycleBody()
		return err
	}

	if st.buffered != nil {
		// ReverseProxy wraps the body; keep the transport's view of it as
		// in memory (rewrite hands it a fresh reader over st.buffered).
		r.Body = newBytesBody(st.buffered)
		r.ContentLength = int64(len(st.buffered))
		st.bodyBuf = nil // the transport may read it after we return: not recycled
	}

	ctx, cancel := context.WithTimeoutCause(r.Context(), t.timeout, errRequestTimeout)
	defer cancel()
	st.Context = ctx
	inst, err := t.pool.acquire(ctx)
	if err != nil {
		return admissionError(err, r)
	}
	defer t.pool.release(inst)
	st.useInstance(inst, act)
	g.proxy.ServeHTTP(&st.w, r.WithContext(st))
	return nil
}

// admissionError maps a failed acquire: a context that ended is the request
// timeout or a client that left.
func admissionError(err error, r *http.Request) error {
	if errors.Is(err, errRequestTimeout) {
		return errRequestTimeout
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if r.Context().Err() != nil {
			return errClientGone
		}
		return errRequestTimeout
	}
	return err
}

// Reasons a 401 gives; they help no attacker.
const (
	reasonMissingToken  = "missing bearer token"
	reasonInvalid       = "invalid credentials"
	reasonExpired       = "token expired"
	reasonNoAMLVerifier = "aml_token is not configured on this server"
	reasonNoAADVerifier = "aad_token is not configured on this server"
)

// authenticate checks the request's bearer credential against rt's mode.
func (g *Gateway) authenticate(ctx context.Context, rt *route, r *http.Request) error {
	v := r.Header[hdrAuthorization]
	if len(v) == 0 {
		return &authError{reason: reasonMissingToken}
	}
	tok, ok := bearerToken(v[0])
	if !ok {
		return &authError{reason: reasonMissingToken}
	}
	switch rt.auth {
	case authKey:
		sum := keySum(tok)
		match := 0
		for i := range rt.keys {
			match |= subtle.ConstantTimeCompare(sum[:], rt.keys[i][:])
		}
		if match != 1 {
			return &authError{reason: reasonInvalid}
		}
		return nil
	case authAMLToken:
		if g.tokens == nil {
			return &authError{reason: reasonNoAMLVerifier}
		}
		return tokenError(g.tokens.VerifyToken(rt.subject, tok))
	case authAADToken:
		if g.oidc == nil {
			return &authError{reason: reasonNoAADVerifier}
		}
		return tokenError(g.oidc.Verify(ctx, tok))
	}
	return &authError{reason: reasonInvalid}
}

// keySum is the sha256 of a presented key. Keys (43 characters) are copied
// to the stack first: converting the string to bytes would allocate.
func keySum(tok string) [sha256.Size]byte {
	var buf [128]byte
	if len(tok) <= len(buf) {
		return sha256.Sum256(append(buf[:0], tok...))
	}
	return sha256.Sum256([]byte(tok))
}

func tokenError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrTokenExpired):
		return &authError{reason: reasonExpired, err: err}
	default:
		return &authError{reason: reasonInvalid, err: err}
	}
}
