package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// maxAllocsPerRequest is the gateway's allocation budget for one scoring
// request on its hot path (routing, auth, split, admission, proxying over
// its own client, metrics, the access log), not counting what net/http's
// server allocates around the handler. BenchmarkServeHTTPAllocs enforces it.
const maxAllocsPerRequest = 8

// rawBackend serves canned responses on loopback without allocating per
// request, so that an allocation count of the process is the gateway's.
func zeroAllocBackend(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"prediction\":[0.42]}")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if end < 0 {
							break
						}
						length := 0
						if i := bytes.Index(buf[:end], []byte("Content-Length: ")); i >= 0 {
							j := i + len("Content-Length: ")
							for j < end && buf[j] >= '0' && buf[j] <= '9' {
								length = length*10 + int(buf[j]-'0')
								j++
							}
						}
						total := end + 4 + length
						if n < total {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						n = copy(buf, buf[total:n])
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// reusableWriter is a ResponseWriter that keeps its header map.
type reusableWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *reusableWriter) Header() http.Header         { return w.h }
func (w *reusableWriter) WriteHeader(code int)        { w.code = code }
func (w *reusableWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// SetReadDeadline is there as on net/http's own writer: the gateway paces
// request bodies with the connection's read deadline.
func (w *reusableWriter) SetReadDeadline(time.Time) error { return nil }

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// BenchmarkServeHTTPAllocs measures the gateway's own allocations per
// scoring request — a real loopback exchange with an instance, key auth, a
// 50/50 split, metrics and the batched access log — and fails when they
// exceed maxAllocsPerRequest. It is the guard against allocations creeping
// back onto the hot path; run it with
//
//	go test -run '^$' -bench ServeHTTPAllocs ./internal/gateway/
func BenchmarkServeHTTPAllocs(b *testing.B) {
	addr := zeroAllocBackend(b)
	alog, err := NewAccessLog(io.Discard, AccessLogText)
	if err != nil {
		b.Fatal(err)
	}
	defer alog.Close()
	g, err := New(Config{AccessLog: alog})
	if err != nil {
		b.Fatal(err)
	}
	// A key as auth.NewKey makes them: 43 characters.
	const key = "pN3mQ8v2Xb7LkR1sT9wY4eZ6uH0jC5aD2fG8iK3oMnE"
	ep := endpoint("ep", roomy("blue", addr), roomy("green", addr))
	ep.Keys = []string{key, ""}
	ep.Traffic = map[string]int{"blue": 50, "green": 50}
	g.Update(snapshot(ep))

	payload := []byte(`{"data":[[5.1,3.5,1.4,0.2]]}`)
	body := &rewindBody{}
	// A cancellable context like the one net/http gives every request (its
	// own allocation is net/http's, made once here).
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
	w := &reusableWriter{h: make(http.Header, 16)}
	one := func() {
		body.Reset(payload)
		req.Body, req.ContentLength = body, int64(len(payload))
		clear(w.h)
		w.code, w.n = 0, 0
		g.ServeHTTP(w, req)
		if w.code != 200 || w.n != 21 {
			b.Fatalf("got %d and %d bytes, want 200 and 21", w.code, w.n)
		}
	}
	for range 100 { // warm: connections, pools, metric children
		one()
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		one()
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/request")
	allocs := testing.AllocsPerRun(1000, one)
	b.ReportMetric(allocs, "allocs/request")
	if allocs > maxAllocsPerRequest {
		b.Fatalf("%.1f allocations per request, budget %d: something allocates on the hot path again (profile with -memprofile)", allocs, maxAllocsPerRequest)
	}
}
