package e2e

import (
	"net/http"
	"testing"
	"time"
)

// serve --http1 fast: the gateway's own HTTP/1.1 loop answers scoring
// requests on plain HTTP as net/http's server does, hands a kept-alive
// connection to net/http's server when a request on it is not a scoring
// one (here /metrics), and a graceful stop still drains.
func TestHTTP1FastLoop(t *testing.T) {
	dir := irisFolder(t)
	body := sampleRequest(t, dir)
	dd := newDataDir(t)
	s := startServer(t, dd, "--insecure-http", "--http1", "fast")
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--auth-mode", "key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	s.waitDeploymentReady(t, irisEndpoint, "blue", 1, 120*time.Second)

	// One connection for everything: scoring, then /metrics on it.
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	uri, key := s.endpoint(t, irisEndpoint).ScoringURI, s.keys(t, irisEndpoint).PrimaryKey
	const n = 20
	for i := range n {
		rep := scoreRouted(t, c, uri, key, "", body)
		if rep.status != http.StatusOK || rep.body != irisPrediction {
			t.Fatalf("request %d on the h1 loop: got %d %s, want 200 %s", i, rep.status, rep.body, irisPrediction)
		}
		if rep.header.Get("x-request-id") == "" || rep.header.Get("Date") == "" {
			t.Errorf("request %d: the answer lacks x-request-id or Date: %v", i, rep.header)
		}
	}
	m := s.metrics(t, c) // not a scoring request: the connection goes to net/http's server
	if got := metricValue(m, "plumbline_http1_loop_requests_total"); got < n {
		t.Errorf("plumbline_http1_loop_requests_total = %v, want at least %d: the loop did not serve the scoring requests", got, n)
	}
	if got := metricValue(m, "plumbline_http1_loop_handovers_total"); got < 1 {
		t.Errorf("plumbline_http1_loop_handovers_total = %v, want at least 1 (the /metrics request's connection)", got)
	}
	// The handed-over connection goes on serving scoring requests.
	if rep := score(t, c, uri, key, "", body); rep.status != http.StatusOK || rep.body != irisPrediction {
		t.Errorf("after the hand-over: got %d %s, want 200 %s", rep.status, rep.body, irisPrediction)
	}
	// A new connection starts on the loop again; then stop with it idle.
	tr.CloseIdleConnections()
	if rep := score(t, c, uri, key, "", body); rep.status != http.StatusOK {
		t.Errorf("on a new connection: got %d %s", rep.status, rep.body)
	}
	s.stop(t) // fails the test if serve does not stop
	select {
	case <-s.exited:
	default:
		t.Fatal("serve still runs after stop")
	}
	if s.waitErr != nil {
		t.Errorf("serve exited with %v after SIGTERM, want a clean exit:\n%s", s.waitErr, s.log.Tail(8<<10))
	}
}
