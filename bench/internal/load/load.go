// Package load generates benchmark traffic and summarises it: a closed-loop
// generator (N workers, each with its own keep-alive connection, sending
// back to back, like wrk), a wrapper around wrk itself, and a constant-rate
// generator built on the vegeta library (open loop: requests leave at the
// set rate whether or not earlier ones have answered, so queueing shows in
// the tail instead of slowing the sender down).
//
// Every client speaks HTTP/1.1 unless asked for HTTP/2 (ClientOptions.HTTP2,
// h2load), and never goes through an HTTP proxy, so that nginx, plumbline
// over TLS and plumbline over plain HTTP are compared on the same protocol.
//
// It imports nothing from plumbline.
package load

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Target is one request to send.
type Target struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// ClientOptions shape the HTTP clients the generators use.
type ClientOptions struct {
	// KeepAlive reuses connections; false opens a new connection per
	// request and sends Connection: close.
	KeepAlive bool
	// RootCAs are trusted for https targets (nil: the system roots).
	RootCAs *x509.CertPool
	// ServerName is the TLS server name when it differs from the URL's host
	// (the URL says 127.0.0.1, the certificate says localhost).
	ServerName string
	// MaxConns bounds connections per host (0: no bound).
	MaxConns int
	// Timeout bounds one request (0: 30 s).
	Timeout time.Duration
	// HTTP2 speaks HTTP/2 over TLS (h2) instead of HTTP/1.1.
	HTTP2 bool
}

// NewTransport returns an HTTP/1.1 transport shaped by o. Go clients set
// TCP_NODELAY but never TCP_QUICKACK: against httpuv with keep-alive they
// show the 40 ms delayed-ACK stall, which is what the "naive keep-alive"
// measurement is about.
func NewTransport(o ClientOptions) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	idle := 1024
	if o.MaxConns > 0 {
		idle = o.MaxConns
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: o.RootCAs, ServerName: o.ServerName, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   !o.KeepAlive,
		DisableCompression:  true,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		MaxConnsPerHost:     o.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	if o.HTTP2 {
		tr.TLSClientConfig.NextProtos = []string{"h2"}
		tr.ForceAttemptHTTP2 = true
		tr.TLSNextProto = nil // nil: net/http's own HTTP/2
	}
	return tr
}

func (o ClientOptions) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 30 * time.Second
}

// Stats summarises one measurement.
type Stats struct {
	// Tool names the generator: "wrk", "go closed-loop", "vegeta".
	Tool string
	// Requests counts every request that completed, whatever the outcome.
	Requests int
	// OK counts 2xx answers; Codes counts answers by status (wrk does not
	// say which non-2xx statuses it got: it counts them under 0); Errors
	// counts requests that got no answer (connection refused, reset,
	// timeout).
	OK     int
	Codes  map[int]int
	Errors int
	// ErrorSamples are a few transport error messages, for the report.
	ErrorSamples []string
	// Elapsed is the measured wall time.
	Elapsed time.Duration
	// RPS is successful (2xx) requests per second.
	RPS float64
	// Latency percentiles of all answered requests.
	P50, P99, Max time.Duration
	// GenCPU is the CPU time an external generator (wrk) used; zero for the
	// in-process generators.
	GenCPU time.Duration
}

// Failed counts requests that did not get a 2xx.
func (s Stats) Failed() int { return s.Requests - s.OK }

// Throughput is completed requests per second, whatever their outcome: for
// a constant-rate run, the rate actually achieved.
func (s Stats) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// Count5xx counts 5xx answers.
func (s Stats) Count5xx() int {
	n := 0
	for c, k := range s.Codes {
		if c >= 500 {
			n += k
		}
	}
	return n
}

// CodesString renders Codes as "200×1234 429×56".
func (s Stats) CodesString() string {
	keys := make([]int, 0, len(s.Codes))
	for c := range s.Codes {
		keys = append(keys, c)
	}
	sort.Ints(keys)
	var b strings.Builder
	for i, c := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d×%d", c, s.Codes[c])
	}
	if s.Errors > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "errors×%d", s.Errors)
	}
	return b.String()
}

// recorder collects outcomes; one per goroutine, merged at the end.
type recorder struct {
	lat     []time.Duration
	codes   map[int]int
	errs    int
	samples []string
}

func newRecorder() *recorder { return &recorder{codes: map[int]int{}} }

func (r *recorder) add(code int, lat time.Duration, err error) {
	if err != nil {
		r.errs++
		if len(r.samples) < 3 {
			r.samples = append(r.samples, err.Error())
		}
		return
	}
	r.codes[code]++
	r.lat = append(r.lat, lat)
}

func (r *recorder) merge(o *recorder) {
	r.lat = append(r.lat, o.lat...)
	for c, n := range o.codes {
		r.codes[c] += n
	}
	r.errs += o.errs
	for _, s := range o.samples {
		if len(r.samples) < 3 && !slices.Contains(r.samples, s) {
			r.samples = append(r.samples, s)
		}
	}
}

func (r *recorder) stats(tool string, elapsed time.Duration) Stats {
	s := Stats{Tool: tool, Codes: r.codes, Errors: r.errs, ErrorSamples: r.samples, Elapsed: elapsed}
	for c, n := range r.codes {
		s.Requests += n
		if c >= 200 && c < 300 {
			s.OK += n
		}
	}
	s.Requests += r.errs
	if elapsed > 0 {
		s.RPS = float64(s.OK) / elapsed.Seconds()
	}
	s.P50, s.P99, s.Max = Percentile(r.lat, 0.50), Percentile(r.lat, 0.99), Percentile(r.lat, 1)
	return s
}

// Percentile returns the q-quantile (0 < q ≤ 1) of lat by the nearest-rank
// method; it sorts lat in place. Zero for an empty slice.
func Percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	if !slices.IsSorted(lat) {
		slices.Sort(lat)
	}
	i := int(math.Ceil(q*float64(len(lat)))) - 1
	return lat[max(0, min(i, len(lat)-1))]
}
