package load

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Result is one request of a constant-rate run, for callers that look at
// more than the summary (which deployment answered, when).
type Result struct {
	Start      time.Time
	Latency    time.Duration
	Code       int // 0: no answer
	Err        string
	Deployment string // the azureml-model-deployment answer header
}

// ConstantRate sends Rate requests per second for Duration with the vegeta
// library, whatever the answers' latency; the targets are used round-robin.
type ConstantRate struct {
	Targets  []Target
	Rate     int
	Duration time.Duration
	Client   ClientOptions
	// Transport, if set, is used instead of a new one built from Client, so
	// that connections (and TLS sessions) opened by a warm-up run are
	// reused.
	Transport *http.Transport
	// OnResult, if set, sees every result as it arrives (from one goroutine).
	OnResult func(Result)
}

// Run runs the load and summarises it. It stops early, with what it has,
// when ctx ends.
func (c ConstantRate) Run(ctx context.Context) Stats {
	tr := c.Transport
	if tr == nil {
		tr = NewTransport(c.Client)
		defer tr.CloseIdleConnections()
	}
	client := &http.Client{Transport: tr, Timeout: c.Client.timeout()}
	attacker := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(16),
		vegeta.MaxBody(64<<10),
	)
	targets := make([]vegeta.Target, len(c.Targets))
	for i, t := range c.Targets {
		targets[i] = vegeta.Target{Method: t.Method, URL: t.URL, Body: t.Body, Header: t.Header.Clone()}
	}
	pacer := vegeta.ConstantPacer{Freq: c.Rate, Per: time.Second}
	var stopOnce sync.Once
	stop := context.AfterFunc(ctx, func() { stopOnce.Do(func() { attacker.Stop() }) })
	defer stop()

	rec := newRecorder()
	start := time.Now()
	var last time.Time
	for r := range attacker.Attack(vegeta.NewStaticTargeter(targets...), pacer, c.Duration, "") {
		var err error
		if r.Code == 0 {
			msg := r.Error
			if msg == "" {
				msg = "no response"
			}
			err = errors.New(msg)
		}
		rec.add(int(r.Code), r.Latency, err)
		if end := r.End(); end.After(last) {
			last = end
		}
		if c.OnResult != nil {
			res := Result{Start: r.Timestamp, Latency: r.Latency, Code: int(r.Code), Err: r.Error}
			if r.Headers != nil {
				res.Deployment = r.Headers.Get("azureml-model-deployment")
			}
			c.OnResult(res)
		}
	}
	elapsed := last.Sub(start)
	if elapsed <= 0 {
		elapsed = time.Since(start)
	}
	return rec.stats("vegeta", elapsed)
}
