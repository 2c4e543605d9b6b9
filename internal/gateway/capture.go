package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plumbline/plumbline/internal/redact"
)

// Capture: a deployment with Capture set has a sampled share of its scoring
// requests kept with their answers (failures included). The request
// goroutine only decides the sample, keeps the request body it read anyway
// and a copy of the response as it is written, and hands the pair to a
// bounded queue without waiting: a full queue drops the record and counts
// it. Capture workers redact the bodies and give the record to the
// CaptureSink; nothing unredacted leaves them.

// CaptureSink receives captured records, already redacted, on the
// gateway's capture workers. A slow sink fills the queue: further records
// are dropped and counted, requests never wait. WriteCapture must not keep
// rec, nor any slice it holds, once it returns (as io.Writer must not keep
// p): the gateway reuses the record and its buffers for later requests, so
// that capturing costs the request no allocation.
type CaptureSink interface {
	WriteCapture(rec *CaptureRecord) error
}

// DefaultCaptureQueue bounds the records waiting for a capture worker.
const DefaultCaptureQueue = 1024

// captureWorkers is how many goroutines redact and write records.
const captureWorkers = 2

// defaultCaptureBody is Capture.MaxBodyBytes's zero value: 256 KiB.
const defaultCaptureBody = 256 << 10

// CaptureRecord is one captured request/response pair, as written to the
// capture files (one JSON line each) and the HTTP sink.
type CaptureRecord struct {
	Time            time.Time `json:"time"`
	RequestID       string    `json:"request_id"`
	ClientRequestID string    `json:"client_request_id,omitempty"`
	Endpoint        string    `json:"endpoint"`
	Deployment      string    `json:"deployment"`
	Instance        string    `json:"instance,omitempty"`
	// Model is "name:version", ModelDigest its artifact digest.
	Model       string `json:"model,omitempty"`
	ModelDigest string `json:"model_digest,omitempty"`
	// Status is the gateway's answer; ModelStatus the model's (0 when it
	// did not answer).
	Status      int     `json:"status"`
	ModelStatus int     `json:"model_status,omitempty"`
	LatencyMs   float64 `json:"latency_ms"`
	// Request and Response are the bodies: JSON as JSON (redacted), text
	// as a string; null when left out, and then RequestOmitted or
	// ResponseOmitted says why.
	Request         json.RawMessage `json:"request"`
	Response        json.RawMessage `json:"response"`
	RequestOmitted  string          `json:"request_omitted,omitempty"`
	ResponseOmitted string          `json:"response_omitted,omitempty"`
	// Redacted counts the values removed or hashed.
	Redacted int `json:"redacted,omitempty"`
	// Config is the deployment's capture settings (files, sink).
	Config *Capture `json:"-"`

	conf *captureConf

	reqBody, respBody []byte
	reqWhy, respWhy   string
	respEnc           string // the response's Content-Encoding
	// reqBuf and respBuf are the pooled buffers behind reqBody and
	// respBody (nil when not pooled), given back once the record is written.
	reqBuf, respBuf *[]byte
}

// records recycles capture records: a captured request allocates none.
var records = sync.Pool{New: func() any { return new(CaptureRecord) }}

// teeBuffers recycles the copies of captured responses.
var teeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledBody is the largest buffer given back to bodyBuffers or
// teeBuffers; larger ones are left to the garbage collector.
const maxPooledBody = bufferBodyBytes + 1 + bytes.MinRead

// recycle gives a pooled buffer back, holding b's backing array (b grew
// out of *p's when it needed more room).
func recycle(pool *sync.Pool, p *[]byte, b []byte) {
	if p == nil {
		return
	}
	if b == nil {
		b = *p
	}
	if cap(b) <= maxPooledBody {
		*p = b[:0]
		pool.Put(p)
	}
}

// release gives the record and its buffers back once it is written or
// dropped.
func (rec *CaptureRecord) release() {
	recycle(&bodyBuffers, rec.reqBuf, rec.reqBody)
	recycle(&teeBuffers, rec.respBuf, rec.respBody)
	*rec = CaptureRecord{}
	records.Put(rec)
}

// captureConf is a deployment's capture, compiled.
type captureConf struct {
	cfg       *Capture
	all       bool   // sampling rate 1
	threshold uint64 // a request is sampled when rand.Uint64() < threshold
	maxBody   int
	rules     *redact.Rules // nil: none; denyAll: the rules did not compile
}

func (g *Gateway) captureConfFor(c *Capture) *captureConf {
	cc := &captureConf{cfg: c, maxBody: c.MaxBodyBytes}
	if cc.maxBody <= 0 {
		cc.maxBody = defaultCaptureBody
	}
	switch r := c.SamplingRate; {
	case r >= 1:
		cc.all = true
	case r > 0:
		cc.threshold = uint64(r * math.MaxUint64)
	}
	rules, err := g.rulesFor(c.Redact, c.Hash)
	if err != nil {
		rules = denyAll
	}
	cc.rules = rules
	return cc
}

// sample decides whether one request is captured.
func (c *captureConf) sample() bool {
	return c.all || (c.threshold > 0 && rand.Uint64() < c.threshold)
}

// startCapture marks a sampled request for capture: its response is
// copied as it is written.
func (st *reqState) startCapture(c *captureConf) {
	st.capture = c
	st.w.teeMax = max(st.w.teeMax, c.maxBody+1)
	if st.w.tee == nil {
		st.w.teeBuf = teeBuffers.Get().(*[]byte)
		st.w.tee = (*st.w.teeBuf)[:0]
	}
}

// captureRecord hands a finished request to the capture queue without
// waiting (finish, on the request goroutine).
func (g *Gateway) captureRecord(st *reqState, status int, elapsed time.Duration) {
	c := st.capture
	rec := records.Get().(*CaptureRecord)
	rec.Time, rec.RequestID, rec.Endpoint, rec.Deployment = st.start.UTC(), st.requestID[0], st.rt.name, st.t.name
	rec.Status, rec.ModelStatus, rec.LatencyMs, rec.Config, rec.conf = status, st.modelStatus, ms(elapsed), c.cfg, c
	if st.clientID != nil {
		rec.ClientRequestID = st.clientID[0]
	}
	p := &st.t.prov
	if st.inst != nil {
		rec.Instance = st.inst.name
		if st.inst.prov != nil {
			p = st.inst.prov
		}
	}
	if p.model != nil {
		rec.Model = p.model[0]
	}
	if p.digest != nil {
		rec.ModelDigest = p.digest[0]
	}
	// The record owns the request body's pooled buffer from here (the
	// request does not recycle it when it is captured).
	rec.reqBuf, st.bodyBuf = st.bodyBuf, nil
	switch {
	case st.body.size() == 0:
	case st.buffered == nil || len(st.buffered) > c.maxBody:
		rec.reqWhy = "larger than max_body_bytes (or streamed)"
	default:
		rec.reqBody = st.buffered
	}
	if st.pair == nil { // a mirrored request's comparison reads the copy too: not recycled
		rec.respBuf = st.w.teeBuf
	}
	st.w.teeBuf = nil
	switch {
	case st.w.teeOver || len(st.w.tee) > c.maxBody:
		rec.respWhy = "larger than max_body_bytes"
	default:
		rec.respBody, rec.respEnc = st.w.tee, contentEncoding(st.w.Header())
	}
	g.startWorkers()
	select {
	case g.captureQ <- rec:
	default:
		g.smetrics.forCapture(rec.Endpoint, rec.Deployment).dropped.Inc()
		rec.release()
	}
}

// captureWorker redacts queued records and writes them to the sink.
func (g *Gateway) captureWorker() { drainEvery(g.captureQ, workerTick, g.writeCapture) }

func (g *Gateway) writeCapture(rec *CaptureRecord) {
	defer rec.release()
	pm := g.smetrics.forCapture(rec.Endpoint, rec.Deployment)
	rules := rec.conf.rules
	resp := rec.respBody
	if resp != nil {
		if b, ok := decodeBody(resp, rec.respEnc, rec.conf.maxBody); ok {
			resp = b
		} else {
			resp, rec.respWhy = nil, "encoded ("+rec.respEnc+") and could not be decoded within max_body_bytes"
		}
	}
	var n1, n2 int
	rec.Request, rec.RequestOmitted, n1 = captureBody(rules, rec.reqBody, rec.reqWhy)
	rec.Response, rec.ResponseOmitted, n2 = captureBody(rules, resp, rec.respWhy)
	rec.Redacted = n1 + n2
	if g.capture == nil {
		pm.failed.Inc()
		return
	}
	if err := g.capture.WriteCapture(rec); err != nil {
		pm.failed.Inc()
		if g.log != nil {
			g.log.Warn("capture: write a record", "endpoint", rec.Endpoint, "deployment", rec.Deployment, "err", err)
		}
		return
	}
	pm.written.Inc()
}

// jsonNull is a body left out (shared: sinks only read records).
var jsonNull = json.RawMessage("null")

// captureBody is a body as a record carries it, with the rules applied.
func captureBody(rules *redact.Rules, body []byte, why string) (json.RawMessage, string, int) {
	null := jsonNull
	switch {
	case why != "":
		return null, why, 0
	case len(body) == 0:
		return null, "", 0
	case rules == denyAll:
		return null, "the redaction rules could not be compiled", 0
	case !rules.Empty():
		out, n, err := rules.Apply(body)
		if err != nil {
			return null, "not JSON: the redaction rules cannot be applied to it", 0
		}
		return out, "", n
	case json.Valid(body):
		return json.RawMessage(body), "", 0
	case utf8.Valid(body):
		b, _ := json.Marshal(string(body))
		return b, "", 0
	}
	return null, "not text", 0
}
