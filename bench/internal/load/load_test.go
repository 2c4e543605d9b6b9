package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const wrkReport = `Running 3s test @ http://127.0.0.1:35015/endpoints/gwbench/score
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.61ms    3.94ms  33.77ms   70.43%
    Req/Sec     5.00k   575.66     6.54k    70.00%
  Latency Distribution
     50%    6.04ms
     75%    8.72ms
     90%   11.73ms
     99%   18.70ms
  29915 requests in 3.01s, 6.09MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 15
Requests/sec:   9938.54
Transfer/sec:      2.03MB
`

func TestParseWrk(t *testing.T) {
	s, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 29915 || s.OK != 29900 || s.Errors != 3 {
		t.Errorf("got requests %d, ok %d, errors %d; want 29915, 29900, 3", s.Requests, s.OK, s.Errors)
	}
	if s.P50 != 6040*time.Microsecond || s.P99 != 18700*time.Microsecond || s.Max != 33770*time.Microsecond {
		t.Errorf("got p50 %s p99 %s max %s; want 6.04ms 18.7ms 33.77ms", s.P50, s.P99, s.Max)
	}
	if want := 29900 / 3.01; s.RPS < want-0.01 || s.RPS > want+0.01 {
		t.Errorf("got %.2f req/s, want %.2f (2xx only)", s.RPS, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("a report without totals parsed without error")
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"456.78us": 456780 * time.Nanosecond, "1.50ms": 1500 * time.Microsecond, "1.02s": 1020 * time.Millisecond, "2.00m": 2 * time.Minute,
	} {
		if got := parseWrkDuration(in); got != want {
			t.Errorf("parseWrkDuration(%q) = %s, want %s", in, got, want)
		}
	}
}

// A header name right after "[" must not open a Lua long string.
func TestLuaScript(t *testing.T) {
	s := luaScript(Target{Method: "POST", Body: []byte(`{"a":"]]"}`), Header: http.Header{"Authorization": {"Bearer k"}}})
	if !strings.Contains(s, "wrk.headers[ [==[Authorization]==] ] = [==[Bearer k]==]") {
		t.Errorf("script:\n%s", s)
	}
	if !strings.Contains(s, `wrk.body = [==[{"a":"]]"}]==]`) {
		t.Errorf("script:\n%s", s)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := Percentile(lat, q); got != want {
			t.Errorf("Percentile(1..100 ms, %v) = %s, want %s", q, got, want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(empty) = %s, want 0", got)
	}
}

func testServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("azureml-model-deployment", "blue")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClosedLoop(t *testing.T) {
	srv := testServer(t)
	ok := Target{Method: "POST", URL: srv.URL, Body: []byte("x"), Header: http.Header{"Authorization": {"Bearer k"}}}
	bad := Target{Method: "POST", URL: srv.URL, Body: []byte("x")}
	// Long enough for each worker's first answer on a loaded machine.
	s := ClosedLoop{Targets: []Target{ok, bad}, Conns: 2, Duration: 2 * time.Second, Client: ClientOptions{KeepAlive: true}}.Run(context.Background())
	if s.OK == 0 || s.Codes[401] == 0 || s.Errors != 0 {
		t.Errorf("got %s, want some 200s and some 401s and no errors", s.CodesString())
	}
	if s.Failed() != s.Codes[401] {
		t.Errorf("Failed() = %d, want the 401 count %d", s.Failed(), s.Codes[401])
	}
}

func TestConstantRate(t *testing.T) {
	srv := testServer(t)
	var deployments int
	s := ConstantRate{
		Targets: []Target{{Method: "POST", URL: srv.URL, Header: http.Header{"Authorization": {"Bearer k"}}}},
		Rate:    200, Duration: 500 * time.Millisecond,
		OnResult: func(r Result) {
			if r.Deployment == "blue" {
				deployments++
			}
		},
	}.Run(context.Background())
	// At most the paced 100 (fewer when a loaded machine delays the pacer):
	// the count, not the timing, is what is checked.
	if s.Requests < 1 || s.Requests > 101 || s.OK != s.Requests {
		t.Errorf("got %d requests (%s) at 200/s for 0.5 s, want at most 100, all 200", s.Requests, s.CodesString())
	}
	if deployments != s.OK {
		t.Errorf("OnResult saw the deployment header %d times, want %d", deployments, s.OK)
	}
}

const h2loadReport = `starting benchmark...
spawning thread #0: 32 total client(s). Timing-based test with 0s of warm-up time and 3s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 3.00s, 4101.33 req/s, 618.43KB/s
requests: 12304 total, 12368 started, 12304 done, 12300 succeeded, 4 failed, 2 errored, 1 timeout
status codes: 12300 2xx, 0 3xx, 4 4xx, 0 5xx
traffic: 1.81MB (1899797) total, 163.72KB (167648) headers (space savings 88.04%), 288.32KB (295248) data
                     min         max         mean         sd        +/- sd
time for request:      197us     91.44ms      7.75ms      6.96ms    72.38%
`

func TestParseH2Load(t *testing.T) {
	s, err := parseH2Load(h2loadReport)
	if err != nil {
		t.Fatal(err)
	}
	if s.OK != 12300 || s.Codes[400] != 4 || s.Errors != 3 || s.Requests != 12304 {
		t.Errorf("got ok %d, 4xx %d, errors %d, requests %d; want 12300, 4, 3, 12304", s.OK, s.Codes[400], s.Errors, s.Requests)
	}
	if want := 12300 / 3.0; s.RPS < want-0.01 || s.RPS > want+0.01 {
		t.Errorf("got %.2f req/s, want %.2f (2xx only)", s.RPS, want)
	}
	if _, err := parseH2Load("connect: Connection refused"); err == nil {
		t.Error("a report without totals parsed without error")
	}
}
