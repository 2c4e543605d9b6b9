package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/plumbline/plumbline/internal/capture"
)

// captureFiles is the CaptureSink the server uses: records as JSON Lines
// files through capture.Writer (here in a temporary folder).
type captureFiles struct{ w *capture.Writer }

func (s captureFiles) WriteCapture(rec *CaptureRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.w.Write(capture.Target{Endpoint: rec.Endpoint, Deployment: rec.Deployment}, rec.Time, b)
}

// BenchmarkCaptureOverhead compares, side by side in one run, a scoring
// request through the gateway (a real loopback exchange with an instance,
// key auth, metrics, the batched access log) without capture and with
// capture of every request (100 % sampling, a redaction rule, records
// written to JSON Lines files by the capture workers on other goroutines,
// which share the machine's CPUs). Rounds alternate between them so that a
// machine whose load changes affects all alike. It reports each one's
// ns/request and their ratio, capture/without; the target is ≤ 1.2. A third
// gateway captures every request to a sink that keeps nothing, with no
// rules: its ratio, path/without, is the request goroutine's own share of
// the cost (the rest is the capture workers' CPU, which shows in the ratio
// only when no core is idle).
//
//	go test -run '^$' -bench CaptureOverhead -benchtime 20000x ./internal/gateway/
func BenchmarkCaptureOverhead(b *testing.B) {
	addr := zeroAllocBackend(b)
	w, err := capture.New(capture.Config{Dir: b.TempDir(), Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	alog, err := NewAccessLog(io.Discard, AccessLogText)
	if err != nil {
		b.Fatal(err)
	}
	defer alog.Close()
	const key = "pN3mQ8v2Xb7LkR1sT9wY4eZ6uH0jC5aD2fG8iK3oMnE"
	mk := func(c *Capture, sink CaptureSink) *Gateway {
		g, err := New(Config{AccessLog: alog, Capture: sink, CaptureQueue: 4096})
		if err != nil {
			b.Fatal(err)
		}
		d := roomy("blue", addr)
		d.ModelName, d.ModelVersion, d.ModelDigest = "iris", "2", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		d.Capture = c
		ep := endpoint("ep", d)
		ep.Keys = []string{key, ""}
		g.Update(snapshot(ep))
		return g
	}
	without := mk(nil, nil)
	with := mk(&Capture{SamplingRate: 1, Redact: []string{"$.customer"}}, captureFiles{w})
	path := mk(&Capture{SamplingRate: 1}, sinkFunc(func(*CaptureRecord) error { return nil }))

	payload := []byte(`{"data":[[5.1,3.5,1.4,0.2]],"customer":"c-17"}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := (&http.Request{
		Method: "POST", URL: &url.URL{Path: "/endpoints/ep/score"}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"},
			"User-Agent": {"bench/1.0"}, "Content-Length": {strconv.Itoa(len(payload))},
		},
		Host: "localhost", RemoteAddr: "127.0.0.1:50000", RequestURI: "/endpoints/ep/score",
	}).WithContext(ctx)
	body := &rewindBody{}
	rw := &reusableWriter{h: make(http.Header, 16)}
	one := func(g *Gateway) {
		body.Reset(payload)
		req.Body, req.ContentLength = body, int64(len(payload))
		clear(rw.h)
		rw.code, rw.n = 0, 0
		g.ServeHTTP(rw, req)
		if rw.code != 200 {
			b.Fatalf("got %d, want 200", rw.code)
		}
	}
	for range 200 { // warm: connections, pools, metric children, files
		one(without)
		one(with)
		one(path)
	}
	const round = 500
	var tWithout, tWith, tPath time.Duration
	n := 0
	b.ResetTimer()
	for n < b.N {
		k := min(round, b.N-n)
		start := time.Now()
		for range k {
			one(without)
		}
		tWithout += time.Since(start)
		start = time.Now()
		for range k {
			one(with)
		}
		tWith += time.Since(start)
		start = time.Now()
		for range k {
			one(path)
		}
		tPath += time.Since(start)
		n += k
	}
	b.StopTimer()
	b.ReportMetric(float64(tWithout.Nanoseconds())/float64(n), "ns/request-without")
	b.ReportMetric(float64(tWith.Nanoseconds())/float64(n), "ns/request-capture")
	b.ReportMetric(float64(tWith)/float64(tWithout), "capture/without")
	b.ReportMetric(float64(tPath)/float64(tWithout), "path/without")
	var m dto.Metric
	_ = with.smetrics.forCapture("ep", "blue").dropped.Write(&m)
	b.ReportMetric(m.GetCounter().GetValue(), "records-dropped")
}
