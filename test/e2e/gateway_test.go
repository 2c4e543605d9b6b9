package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBlueGreenRestartAndGateway runs the seed's blue and green
// deployments side by side behind a key endpoint, kills `plumbline serve`
// with SIGKILL and restarts it on the same data dir, then checks the
// gateway through the binary: keys and their rotation, a 90/10 split over
// 1000 requests, mirroring, and TLS with the local CA.
func TestBlueGreenRestartAndGateway(t *testing.T) {
	dir := irisFolder(t)
	body := sampleRequest(t, dir)
	dd := newDataDir(t)
	s := startServer(t, dd)

	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--auth-mode", "key")
	// The split and mirror checks below score from two workers against one
	// R instance per deployment that takes one request at a time: the
	// second request waits in the gateway's queue, and the time it waits
	// counts in request_timeout_ms. On a loaded 2-core machine R can take
	// long enough for that to matter; these checks are about the split, so
	// requests may take their time.
	patient := []string{"--set", "request_settings.request_timeout_ms=60000"}
	s.mustIn(t, dir, append([]string{"online-deployment", "create", "-f", "deployment.yml", "--all-traffic"}, patient...)...)
	s.mustIn(t, dir, append([]string{"online-deployment", "create", "-f", "green-deployment.yml"}, patient...)...)

	if !t.Run("blue and green side by side", func(t *testing.T) {
		s.must(t, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", "blue=50 green=50")
		c := s.httpClient(t)
		uri, key := s.endpoint(t, irisEndpoint).ScoringURI, s.keys(t, irisEndpoint).PrimaryKey
		seen := map[string]int{}
		for i := 0; i < 40; i++ {
			rep := score(t, c, uri, key, "", body)
			if rep.status != http.StatusOK || rep.body != irisPrediction {
				t.Fatalf("request %d at 50/50: got %d %s", i, rep.status, rep.body)
			}
			seen[rep.deployment]++
		}
		if seen["blue"] == 0 || seen["green"] == 0 || seen["blue"]+seen["green"] != 40 {
			t.Errorf("40 requests at blue=50 green=50: answered by %v, want both", seen)
		}

		// invoke --deployment-name green reaches green, and only green.
		requests := func(dep string) float64 {
			return metricValue(s.metrics(t, c), "plumbline_requests_total", `endpoint="`+irisEndpoint+`"`, `deployment="`+dep+`"`)
		}
		blue0, green0 := requests("blue"), requests("green")
		inv := s.mustIn(t, dir, "online-endpoint", "invoke", "--name", irisEndpoint, "--request-file", "sample_request.json", "--deployment-name", "green")
		if got := strings.TrimSpace(inv.stdout); got != irisPrediction {
			t.Errorf("invoke --deployment-name green: got %q, want %q", got, irisPrediction)
		}
		waitFor(t, 3*time.Second, "green's request counter to count the invoke", func() (bool, string) {
			g := requests("green")
			return g == green0+1, fmt.Sprintf("green %v → %v", green0, g)
		})
		if b := requests("blue"); b != blue0 {
			t.Errorf("invoke --deployment-name green also reached blue: blue's counter %v → %v", blue0, b)
		}
		if rep := score(t, c, uri, key, "green", body); rep.status != http.StatusOK || rep.deployment != "green" {
			t.Errorf("POST with azureml-model-deployment: green: got %d from %q, want 200 from green", rep.status, rep.deployment)
		}
	}) {
		return
	}

	// The restarted server belongs to the whole test, so it is started
	// here rather than in the subtest that checks it.
	if leaders := instanceLeaders(dd); len(leaders) != 2 {
		t.Fatalf("before the kill: want 2 instance processes (blue-0, green-0) from this data dir, got %v", leaders)
	}
	// Every process of the instances: on the lean R runtime, the
	// supervisor, its R session and the workers.
	old := instanceProcs(dd)
	s.kill9(t)
	for pid := range old {
		if !alive(pid) {
			t.Errorf("kill -9 of plumbline serve took R instance pid %d with it; instances must outlive the server", pid)
		}
	}
	restart := time.Now()
	s = startServer(t, dd)
	if !t.Run("kill -9 of serve and restart re-adopts the R instances", func(t *testing.T) {
		for _, dep := range []string{"blue", "green"} {
			s.waitDeploymentReady(t, irisEndpoint, dep, 1, 90*time.Second)
		}
		t.Logf("both deployments ready again %s after the restart", time.Since(restart).Round(time.Millisecond))
		now := instanceProcs(dd)
		if leaders := instanceLeaders(dd); len(leaders) != 2 {
			t.Errorf("after the restart: instance processes %v, want the 2 from before", leaders)
		}
		for pid := range old {
			if _, same := now[pid]; !same {
				t.Errorf("R instance pid %d from before the restart no longer serves (now %v): it was not re-adopted", pid, now)
			}
		}
		for _, dep := range []string{"blue", "green"} {
			if ev := s.must(t, "online-deployment", "events", "--name", dep, "--endpoint-name", irisEndpoint).stdout; !strings.Contains(ev, "Re-adopted instance "+dep+"-0") {
				t.Errorf("%s's events lack the re-adoption:\n%s", dep, ev)
			}
		}
		recs := records(t, dd)
		ports := map[int]string{}
		for _, r := range recs {
			if _, ok := now[r.PID]; !ok {
				t.Errorf("record %s names pid %d, which is not one of this data dir's instance processes %v", r.ID, r.PID, now)
			}
			if other, clash := ports[r.Port]; clash {
				t.Errorf("instances %s and %s share port %d", other, r.ID, r.Port)
			}
			ports[r.Port] = r.ID
		}
		if len(recs) != 2 {
			t.Errorf("after the restart: got %d instance records, want 2: %+v", len(recs), recs)
		}
		c := s.httpClient(t)
		uri, key := s.endpoint(t, irisEndpoint).ScoringURI, s.keys(t, irisEndpoint).PrimaryKey
		for _, dep := range []string{"blue", "green"} {
			if rep := scoreRouted(t, c, uri, key, dep, body); rep.status != http.StatusOK || rep.deployment != dep || rep.body != irisPrediction {
				t.Errorf("%s after the restart: got %d from %q: %s", dep, rep.status, rep.deployment, rep.body)
			}
		}
	}) {
		return
	}

	c := s.httpClient(t)
	uri := s.endpoint(t, irisEndpoint).ScoringURI

	t.Run("keys", func(t *testing.T) {
		k := s.keys(t, irisEndpoint)
		for _, tc := range []struct {
			name, secret string
			want         int
		}{
			{"primary key", k.PrimaryKey, http.StatusOK},
			{"secondary key", k.SecondaryKey, http.StatusOK},
			{"no key", "", http.StatusUnauthorized},
			{"wrong key", k.PrimaryKey + "x", http.StatusUnauthorized},
		} {
			if rep := score(t, c, uri, tc.secret, "", body); rep.status != tc.want {
				t.Errorf("%s: got %d %s, want %d", tc.name, rep.status, rep.body, tc.want)
			}
		}
		s.must(t, "online-endpoint", "regenerate-keys", "--name", irisEndpoint, "--key-type", "primary")
		k2 := s.keys(t, irisEndpoint)
		if k2.PrimaryKey == k.PrimaryKey || k2.SecondaryKey != k.SecondaryKey {
			t.Fatalf("regenerate-keys --key-type primary: want a new primary and the same secondary")
		}
		rotated := time.Now()
		waitFor(t, 2*time.Second, "the old primary key to be refused", func() (bool, string) {
			rep := score(t, c, uri, k.PrimaryKey, "", body)
			return rep.status == http.StatusUnauthorized, fmt.Sprint(rep.status)
		})
		t.Logf("old primary key refused %s after regenerate-keys returned", time.Since(rotated).Round(time.Millisecond))
		if rep := score(t, c, uri, k2.PrimaryKey, "", body); rep.status != http.StatusOK {
			t.Errorf("new primary key: got %d %s, want 200", rep.status, rep.body)
		}
	})
	key := s.keys(t, irisEndpoint).PrimaryKey

	t.Run("90/10 split over 1000 requests", func(t *testing.T) {
		s.must(t, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", "blue=90 green=10")
		if tr := s.endpoint(t, irisEndpoint).Traffic; tr["blue"] != 90 || tr["green"] != 10 {
			t.Fatalf("traffic after update: %v, want blue=90 green=10", tr)
		}
		start := time.Now()
		counts, failures := scoreMany(c, uri, key, body, 1000, 2)
		t.Logf("1000 requests in %s: %v", time.Since(start).Round(time.Millisecond), counts)
		if len(failures) > 0 {
			t.Fatalf("%d of 1000 requests failed, e.g. %s", len(failures), failures[0])
		}
		blue := float64(counts["blue"]) / 10
		if counts["blue"]+counts["green"] != 1000 || blue < 85 || blue > 95 {
			t.Errorf("blue=90 green=10: got %v (blue %.1f%%), want blue within 85–95%%", counts, blue)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		s.must(t, "online-endpoint", "update", "--name", irisEndpoint, "--traffic", "blue=100", "--mirror-traffic", "green=10")
		ep := s.endpoint(t, irisEndpoint)
		if ep.MirrorTraffic["green"] != 10 || ep.Traffic["blue"] != 100 || ep.Traffic["green"] != 0 {
			t.Fatalf("after update: traffic %v mirror %v, want blue=100 and mirror green=10", ep.Traffic, ep.MirrorTraffic)
		}
		sent := func() float64 {
			return metricValue(s.metrics(t, c), "plumbline_mirrored_requests_total", `deployment="green"`, `result="sent"`)
		}
		n := 0
		for n < 1000 && sent() == 0 {
			counts, failures := scoreMany(c, uri, key, body, 50, 2)
			n += 50
			if len(failures) > 0 || counts["blue"] != 50 {
				t.Fatalf("with green mirrored: want every answer from blue, got %v, failures %v", counts, failures)
			}
			time.Sleep(100 * time.Millisecond) // mirror copies are sent asynchronously
		}
		m := s.metrics(t, c)
		if got := metricValue(m, "plumbline_mirrored_requests_total", `deployment="green"`, `result="sent"`); got == 0 {
			t.Errorf("after %d requests with mirror green=10: plumbline_mirrored_requests_total{deployment=\"green\",result=\"sent\"} is 0:\n%s", n, grepLines(m, "plumbline_mirrored"))
		} else {
			t.Logf("%d requests → %v mirrored to green", n, got)
		}
	})

	t.Run("metrics need the admin token", func(t *testing.T) {
		resp, err := c.Get(s.state.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics without a token: got %d, want 401", resp.StatusCode)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		// A client with only the system roots does not trust the local CA.
		untrusted := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
		defer untrusted.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		_, err := untrusted.Do(req)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("a client that does not trust tls/ca.crt: got error %v, want x509: certificate signed by unknown authority", err)
		}
		// One that trusts it verifies the chain up to that CA.
		req, _ = http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("a client that trusts tls/ca.crt: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
			t.Fatalf("a client that trusts tls/ca.crt: got %s, verified chains %v", resp.Status, resp.TLS != nil && len(resp.TLS.VerifiedChains) > 0)
		}
		chain := resp.TLS.VerifiedChains[0]
		root := chain[len(chain)-1]
		if _, err := root.Verify(x509.VerifyOptions{Roots: caPool(t, dd)}); err != nil {
			t.Errorf("the chain does not end at tls/ca.crt: %v", err)
		}
		if err := chain[0].VerifyHostname("localhost"); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	})
}

// scoreMany sends n requests from `workers` goroutines and counts the
// answering deployments; failures describe non-200 answers and errors.
func scoreMany(c *http.Client, uri, key, body string, n, workers int) (map[string]int, []string) {
	var mu sync.Mutex // protects counts and failures
	counts := map[string]int{}
	var failures []string
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				rep, err := tryScore(c, uri, key, "", body)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case rep.status != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%d from %q: %s", rep.status, rep.deployment, rep.body))
				default:
					counts[rep.deployment]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Strings(failures)
	return counts, failures
}

// grepLines returns the lines of text containing s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
