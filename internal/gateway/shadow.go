package gateway

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/plumbline/plumbline/internal/compare"
	"github.com/plumbline/plumbline/internal/figures"
	"github.com/plumbline/plumbline/internal/redact"
)

// Shadow comparison: a mirrored request keeps both answers. The live
// request keeps a copy of its response body (up to maxCompareBody) as it is
// written to the client; the mirrored copy reads its answer instead of
// discarding it. Whichever half finishes second hands the pair to a
// comparison worker through a bounded queue (full: the pair is dropped and
// counted), so the comparison never runs on a request's goroutine.

// maxCompareBody is the largest answer compared; a larger one makes the
// pair incomparable.
const maxCompareBody = 1 << 20

// DefaultCompareQueue bounds the pairs waiting for a comparison worker.
const DefaultCompareQueue = 256

// diffEvery is the least time between two sampled diffs of one comparison
// on one gateway.
const diffEvery = time.Second

// half is one side's answer.
type half struct {
	status  int // the gateway's status for it (424 for a model's non-2xx); 0 when it never answered
	seconds float64
	body    []byte
	over    bool   // the body passed maxCompareBody
	enc     string // its Content-Encoding
}

// pairJob is one mirrored request's two answers.
type pairJob struct {
	g         *Gateway
	endpoint  string
	epoch     int64
	kind      string
	live      *target
	shadow    *target
	cmp       *compare.Comparer
	requestID string
	request   []byte
	at        time.Time

	pending atomic.Int32 // halves still to come
	// Written by one side each before its pending.Add: live by the request
	// goroutine, the rest by the mirror goroutine.
	liveHalf   half
	shadowHalf half
	dropped    bool // the copy was never sent: no mirror slot, admission full
	refused    bool // the shadow's input contract refused the copy
}

// newPair starts the comparison of a mirrored request.
func (g *Gateway) newPair(rt *route, live, shadow *target, st *reqState) *pairJob {
	p := &pairJob{
		g: g, endpoint: rt.name, epoch: rt.epoch, kind: KindMirror, live: live, shadow: shadow, cmp: rt.comparer,
		requestID: st.requestID[0], request: st.mirrorBody, at: st.start,
	}
	if p.cmp == nil {
		p.cmp = comparerFor(nil)
	}
	p.pending.Store(2)
	st.w.teeMax = maxCompareBody
	return p
}

// done hands the pair on once both halves are in.
func (p *pairJob) done() {
	if p.pending.Add(-1) == 0 {
		p.g.enqueuePair(p)
	}
}

// liveDone records the live answer (finish, on the request goroutine).
func (st *reqState) pairLiveDone(status int, seconds float64) {
	p := st.pair
	p.liveHalf = half{status: status, seconds: seconds, body: st.w.tee, over: st.w.teeOver, enc: contentEncoding(st.w.Header())}
	p.done()
}

// pairDropped: the mirrored copy was not sent (nil-safe).
func (st *reqState) pairDropped() {
	if p := st.pair; p != nil {
		p.dropped = true
		p.done()
	}
}

// shadowAnswered records the mirrored copy's answer; body is read from r
// (nil when there is none), encoded as enc.
func (p *pairJob) shadowAnswered(status int, start time.Time, r io.Reader, enc string) {
	p.shadowHalf = readHalf(status, start, r, enc)
	p.done()
}

func contentEncoding(h http.Header) string {
	if v := h["Content-Encoding"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// readHalf reads an answer's body (up to maxCompareBody) and times it.
func readHalf(status int, start time.Time, r io.Reader, enc string) half {
	h := half{status: status, enc: enc}
	if r != nil {
		b, err := io.ReadAll(io.LimitReader(r, maxCompareBody+1))
		switch {
		case err != nil:
			h.status = 502
		case len(b) > maxCompareBody:
			h.over = true
		default:
			h.body = b
		}
	}
	h.seconds = time.Since(start).Seconds()
	return h
}

// shadowRefused: the shadow's input contract refused the copy.
func (p *pairJob) shadowRefused() {
	p.refused = true
	p.done()
}

// shadowDropped: admission to the shadow was full (the copy is dropped).
func (p *pairJob) shadowDropped() {
	p.dropped = true
	p.done()
}

// enqueuePair queues a complete pair for a comparison worker.
func (g *Gateway) enqueuePair(p *pairJob) {
	g.startWorkers()
	select {
	case g.compareQ <- p:
	default:
		g.smetrics.pair(p, "dropped").Inc()
	}
}

// compareWorker compares pairs until the gateway shuts down.
func (g *Gateway) compareWorker() { drainEvery(g.compareQ, workerTick, g.comparePair) }

// workerTick is how often the comparison and capture workers take what is
// queued.
const workerTick = 10 * time.Millisecond

// drainEvery handles what q holds every tick, rather than waiting on q: a
// request that queues work then never wakes a sleeping worker (a scheduler
// hand-off, which costs the request more than the send itself). At the
// default queue sizes a worker falls behind only past ~100 000 items a
// second, and then the queue drops and counts.
func drainEvery[T any](q <-chan T, tick time.Duration, handle func(T)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for range t.C {
	drain:
		for {
			select {
			case v := <-q:
				handle(v)
			default:
				break drain
			}
		}
	}
}

// comparePair compares one pair and adds it to the figures.
func (g *Gateway) comparePair(p *pairJob) {
	if p.dropped {
		g.smetrics.pair(p, "dropped").Inc()
		return
	}
	lh, sh := p.liveHalf, p.shadowHalf
	var okl, oks bool
	lh.body, okl = decodeBody(lh.body, lh.enc, maxCompareBody)
	sh.body, oks = decodeBody(sh.body, sh.enc, maxCompareBody)
	lh.over = lh.over || !okl
	sh.over = sh.over || !oks
	p.liveHalf.body, p.shadowHalf.body = lh.body, sh.body // diffs show them decoded
	var o compare.Outcome
	liveOK := lh.status >= 200 && lh.status <= 299
	shadowOK := !p.refused && sh.status >= 200 && sh.status <= 299
	switch {
	case lh.over || sh.over:
		o.Reason = "an answer is larger than 1 MiB (or its encoding is unknown)"
	case liveOK && shadowOK:
		o = p.cmp.Compare(lh.body, sh.body)
	default:
		o.Reason = "an answer is an error"
	}
	result := "incomparable"
	switch {
	case p.refused:
		result = "refused"
	case o.Comparable && o.Agree():
		result = "agree"
	case o.Comparable:
		result = "disagree"
	}
	g.smetrics.pair(p, result).Inc()
	g.smetrics.observePair(p, &o)

	s := g.book.set(p.endpoint, p.epoch)
	k := pairKey{p.kind, PairSubject(p.live.name, p.shadow.name)}
	sampled := false
	s.mu.Lock()
	f := s.pair(k)
	f.LiveRequests++
	f.LiveLatency.Add(lh.seconds)
	if figures.IsError(lh.status) {
		f.LiveErrors++
	}
	if p.refused {
		f.ShadowContractViolations++
	} else {
		f.ShadowRequests++
		f.ShadowLatency.Add(sh.seconds)
		if sh.status == 0 || figures.IsError(sh.status) {
			f.ShadowErrors++
		}
	}
	if o.Comparable {
		f.Pairs++
		if o.Agree() {
			f.PairsAgreed++
		}
		f.Predictions += int64(o.Predictions)
		f.Agreed += int64(o.Agreed)
		for _, d := range o.Deltas {
			f.Deltas.Add(d)
		}
		for _, c := range o.Classes {
			l, sl := f.AddClass(c[0], c[1])
			if l != sl {
				g.smetrics.flip(p, l, sl)
			}
		}
		if !o.Agree() {
			if s.lastDiffs == nil {
				s.lastDiffs = map[pairKey]time.Time{}
			}
			if now := time.Now(); now.Sub(s.lastDiffs[k]) >= diffEvery {
				s.lastDiffs[k] = now
				sampled = true
			}
		}
	} else if !p.refused {
		f.Incomparable++
	}
	s.dirty = true
	s.touched = time.Now()
	s.mu.Unlock()
	if sampled {
		g.sampleDiff(p, o.Diff)
	}
}

// DiffSample is one disagreeing pair kept for people to read: the request
// and both answers, each redacted with the capture rules of both
// deployments (a body the rules cannot be applied to is left out).
type DiffSample struct {
	Endpoint string
	Epoch    int64
	Kind     string // KindMirror or KindReplay
	Live     string
	Shadow   string
	Time     time.Time
	// RequestID is the live request's x-request-id (or the captured one).
	RequestID string
	// Request, LiveAnswer and ShadowAnswer are JSON; a body that is not
	// JSON is a JSON string, one left out is null.
	Request, LiveAnswer, ShadowAnswer json.RawMessage
	// Diff is where they first differ.
	Diff string
}

// sampleDiff redacts a disagreeing pair and keeps it for TakeDiffs.
func (g *Gateway) sampleDiff(p *pairJob, diff string) {
	rules := g.diffRules(p.live, p.shadow)
	d := DiffSample{
		Endpoint: p.endpoint, Epoch: p.epoch, Kind: p.kind, Live: p.live.name, Shadow: p.shadow.name,
		Time: p.at.UTC(), RequestID: p.requestID, Diff: diff,
		Request:      bodyJSON(rules, p.request),
		LiveAnswer:   bodyJSON(rules, p.liveHalf.body),
		ShadowAnswer: bodyJSON(rules, p.shadowHalf.body),
	}
	b := g.book
	b.mu.Lock()
	if len(b.diffs) >= maxPendingDiffs {
		b.diffs = b.diffs[1:]
	}
	b.diffs = append(b.diffs, d)
	b.mu.Unlock()
}

// diffRules are the redaction rules of both deployments together.
func (g *Gateway) diffRules(a, b *target) *redact.Rules {
	var red, hash []string
	for _, t := range []*target{a, b} {
		if t.capture != nil {
			red = append(red, t.capture.cfg.Redact...)
			hash = append(hash, t.capture.cfg.Hash...)
		}
	}
	r, err := g.rulesFor(red, hash)
	if err != nil {
		return denyAll
	}
	return r
}

// denyAll stands for rules that could not be compiled: nothing is kept.
var denyAll = &redact.Rules{}

// bodyJSON is a body as a JSON value, redacted: JSON as it is (after the
// rules), text as a string when there are no rules, null otherwise.
func bodyJSON(rules *redact.Rules, body []byte) json.RawMessage {
	if body == nil || rules == denyAll {
		return json.RawMessage("null")
	}
	if !rules.Empty() {
		out, _, err := rules.Apply(body)
		if err != nil {
			return json.RawMessage("null")
		}
		return out
	}
	if json.Valid(body) {
		return json.RawMessage(body)
	}
	if utf8.Valid(body) {
		b, _ := json.Marshal(string(body))
		return b
	}
	return json.RawMessage("null")
}

// TakeDiffs returns the sampled disagreeing pairs since the last call.
func (g *Gateway) TakeDiffs() []DiffSample {
	b := g.book
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.diffs
	b.diffs = nil
	return out
}

// startWorkers starts the comparison and capture workers on first use.
func (g *Gateway) startWorkers() {
	g.workersOnce.Do(func() {
		go g.compareWorker()
		for range captureWorkers {
			go g.captureWorker()
		}
	})
}

// rulesCache caches compiled redaction rules by their expressions.
type rulesCache struct {
	mu sync.Mutex // protects m
	m  map[string]*redact.Rules
}

// rulesFor compiles (once) redaction rules with the gateway's hash key.
func (g *Gateway) rulesFor(red, hash []string) (*redact.Rules, error) {
	if len(red) == 0 && len(hash) == 0 {
		return nil, nil
	}
	key := ""
	for _, e := range red {
		key += "r\x00" + e + "\x00"
	}
	for _, e := range hash {
		key += "h\x00" + e + "\x00"
	}
	g.rules.mu.Lock()
	defer g.rules.mu.Unlock()
	if r, ok := g.rules.m[key]; ok {
		return r, nil
	}
	r, err := redact.Compile(red, hash, g.hashKey)
	if err != nil {
		return nil, err
	}
	if g.rules.m == nil || len(g.rules.m) > 256 {
		g.rules.m = map[string]*redact.Rules{}
	}
	g.rules.m[key] = r
	return r, nil
}

// decodeBody undoes a response's Content-Encoding (gzip or deflate, as
// plumber sends to a client that accepts it) so that answers compare and
// captures read as JSON; ok is false for an encoding it does not know, a
// corrupt body, or one that decodes to more than limit bytes.
func decodeBody(b []byte, encoding string, limit int) ([]byte, bool) {
	var r io.ReadCloser
	var err error
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return b, true
	case "gzip", "x-gzip":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(b))
	default:
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil || len(out) > limit {
		return nil, false
	}
	return out, true
}
