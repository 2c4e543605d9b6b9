package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ReplayRequest is one captured request to send again, with the answer it
// got then.
type ReplayRequest struct {
	// RequestID is the captured request's id; the replayed request carries
	// it as x-ms-client-request-id.
	RequestID string
	// Body is the captured request body (JSON); Answer the captured
	// answer's body, Status its status and Seconds its time to answer.
	Body, Answer []byte
	Status       int
	Seconds      float64
}

// ReplaySummary says what a replay did.
type ReplaySummary struct {
	Endpoint string `json:"endpoint"`
	From     string `json:"from"`
	To       string `json:"to"`
	Epoch    int64  `json:"epoch"`
	// Sent requests, of which Answered 2xx; Compared pairs, of which
	// Agreed in every prediction; Dropped: admission to the deployment was
	// full or it had no ready instance.
	Sent     int `json:"sent"`
	Answered int `json:"answered"`
	Compared int `json:"compared"`
	Agreed   int `json:"agreed"`
	Dropped  int `json:"dropped"`
}

// ErrReplayTarget: the deployment to replay to is not in the routing table.
var ErrReplayTarget = errors.New("no such deployment in the routing table")

// Replay sends captured requests of deployment from to deployment to, one
// at a time through its admission (its limits apply), and compares each
// answer with the captured one: the figures go with the endpoint's
// comparisons (KindReplay, PairSubject(from, to)) in its current epoch, as
// mirrored pairs do. It stops early when ctx ends.
func (g *Gateway) Replay(ctx context.Context, endpoint, from, to string, reqs []ReplayRequest) (ReplaySummary, error) {
	endpoint, from, to = strings.ToLower(endpoint), strings.ToLower(from), strings.ToLower(to)
	rt := g.table.Load().endpoints[endpoint]
	if rt == nil {
		return ReplaySummary{}, fmt.Errorf("endpoint %s: %w", endpoint, ErrReplayTarget)
	}
	t := rt.targets[to]
	if t == nil {
		return ReplaySummary{}, fmt.Errorf("deployment %s of endpoint %s: %w", to, endpoint, ErrReplayTarget)
	}
	live := rt.targets[from]
	if live == nil {
		live = &target{endpoint: endpoint, name: from} // captured from a deployment since deleted
	}
	cmp := rt.comparer
	if cmp == nil {
		cmp = comparerFor(nil)
	}
	sum := ReplaySummary{Endpoint: endpoint, From: from, To: to, Epoch: rt.epoch}
	for _, rq := range reqs {
		if ctx.Err() != nil {
			break
		}
		p := &pairJob{g: g, endpoint: endpoint, epoch: rt.epoch, kind: KindReplay, live: live, shadow: t, cmp: cmp,
			requestID: rq.RequestID, request: rq.Body, at: time.Now()}
		p.liveHalf = half{status: rq.Status, seconds: rq.Seconds, body: rq.Answer}
		g.replayOne(ctx, p, t, rq)
		sum.Sent++
		if p.dropped {
			sum.Dropped++
			continue
		}
		if s := p.shadowHalf.status; s >= 200 && s <= 299 {
			sum.Answered++
		}
		o := cmp.Compare(p.liveHalf.body, p.shadowHalf.body)
		if p.liveHalf.status >= 200 && p.liveHalf.status <= 299 && p.shadowHalf.status >= 200 && p.shadowHalf.status <= 299 && o.Comparable {
			sum.Compared++
			if o.Agree() {
				sum.Agreed++
			}
		}
		g.comparePair(p)
	}
	g.book.flushSoon() // the figures reach the store now, not at the next interval
	return sum, ctx.Err()
}

// replayOne sends one request to t and fills p's shadow half.
func (g *Gateway) replayOne(ctx context.Context, p *pairJob, t *target, rq ReplayRequest) {
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, t.timeout, errRequestTimeout)
	defer cancel()
	inst, err := t.pool.acquire(ctx)
	if err != nil {
		if errors.Is(err, errQueueFull) || errors.Is(err, errNoInstance) || errors.Is(err, errQueueWait) {
			p.dropped = true
			return
		}
		p.shadowHalf = half{status: http.StatusRequestTimeout, seconds: time.Since(start).Seconds()}
		return
	}
	defer t.pool.release(inst)
	h := http.Header{"Content-Type": {"application/json"}, hdrRequestID: {newRequestID()}}
	if id := sanitizeClientRequestID(rq.RequestID); id != "" {
		h[hdrClientRequestID] = []string{id}
	}
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Scheme: "http", Host: inst.host, Path: inst.scoringPath},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          inst.hostHeader,
		ContentLength: int64(len(rq.Body)),
	}).WithContext(ctx)
	if len(rq.Body) > 0 {
		req.Body = newBytesBody(rq.Body)
	}
	res, err := g.transport.RoundTrip(req)
	if err != nil {
		status := http.StatusBadGateway
		if ctx.Err() != nil {
			status = http.StatusRequestTimeout
		}
		p.shadowHalf = half{status: status, seconds: time.Since(start).Seconds()}
		return
	}
	defer res.Body.Close()
	status := res.StatusCode
	if status < 200 || status > 299 {
		status = http.StatusFailedDependency
	}
	p.shadowHalf = readHalf(status, start, res.Body, res.Header.Get("Content-Encoding"))
}
