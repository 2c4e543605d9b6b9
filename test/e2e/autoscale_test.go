package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/autoscale"
	"github.com/plumbline/plumbline/internal/store/postgres/pgtest"
)

// The bench backend (a Go scoring server with an optional delay), built once
// per package run.
var backendBin struct {
	once sync.Once
	dir  string
	path string
	err  string
}

func benchBackend(t *testing.T) string {
	t.Helper()
	requireBinary(t)
	backendBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "plumbline-e2e-backend-")
		if err != nil {
			backendBin.err = err.Error()
			return
		}
		backendBin.dir = dir
		// A server running as root runs instances as the unprivileged
		// instance user, who must reach the executable.
		if err := os.Chmod(dir, 0o755); err != nil {
			backendBin.err = err.Error()
			return
		}
		path := filepath.Join(dir, "bench-backend")
		build := exec.Command("go", "build", "-o", path, "./bench/cmd/bench-backend")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			backendBin.err = fmt.Sprintf("build bench-backend: %v\n%s", err, out)
			return
		}
		backendBin.path = path
	})
	if backendBin.err != "" {
		t.Fatal(backendBin.err)
	}
	return backendBin.path
}

// genericDeployment is a deployment of the bench backend answering after
// delay, with extra YAML appended.
func genericDeployment(backend, endpoint, name, delay, extra string) string {
	return `name: ` + name + `
endpoint_name: ` + endpoint + `
environment:
  plumbline:
    runtime: generic
    command: ["` + backend + `", "--port", "{port}", "--delay", "` + delay + `"]
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS3_v2
` + extra
}

// scaleSample is the desired and actual instance counts at one moment.
type scaleSample struct {
	at              time.Duration
	desired, actual int
}

// sampleScale reads the autoscaler's gauges from /metrics every 250 ms
// until stop is closed.
func sampleScale(s *server, c *http.Client, endpoint, deployment string, start time.Time, stop <-chan struct{}) func() []scaleSample {
	var mu sync.Mutex
	var trace []scaleSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			m, err := scrape(s, c)
			if err == nil {
				lbl := []string{`endpoint="` + endpoint + `"`, `deployment="` + deployment + `"`}
				mu.Lock()
				trace = append(trace, scaleSample{at: time.Since(start),
					desired: int(metricValue(m, "plumbline_desired_instances", lbl...)),
					actual:  int(metricValue(m, "plumbline_actual_instances", lbl...))})
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	return func() []scaleSample {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]scaleSample(nil), trace...)
	}
}

// scrape GETs /metrics with the admin token, for goroutines other than the
// test's.
func scrape(s *server, c *http.Client) (string, error) {
	tok, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodGet, s.state.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// warm opens n kept-alive connections to the server, so that a burst that
// follows is not spread out by TLS handshakes.
func warm(t *testing.T, s *server, c *http.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Get(s.state.URL + "/healthz")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}()
	}
	wg.Wait()
}

// load runs closed-loop clients, each sending one request after another,
// and counts what they got. setClients changes how many run.
type load struct {
	t      *testing.T
	c      *http.Client
	uri    string
	key    string
	body   string
	mu     sync.Mutex
	stops  []chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	errs   chan string
}

func newLoad(t *testing.T, c *http.Client, uri, key, body string) *load {
	return &load{t: t, c: c, uri: uri, key: key, body: body, errs: make(chan string, 16)}
}

func (l *load) setClients(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.stops) > n {
		close(l.stops[len(l.stops)-1])
		l.stops = l.stops[:len(l.stops)-1]
	}
	for len(l.stops) < n {
		stop := make(chan struct{})
		l.stops = append(l.stops, stop)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := tryScore(l.c, l.uri, l.key, "", l.body)
				switch {
				case err == nil && r.status == http.StatusOK:
					l.ok.Add(1)
				default:
					l.failed.Add(1)
					msg := fmt.Sprint(err)
					if err == nil {
						msg = fmt.Sprintf("%d %s", r.status, r.body)
					}
					select {
					case l.errs <- msg:
					default:
					}
				}
			}
		}()
	}
}

func (l *load) stop() {
	l.setClients(0)
	l.wg.Wait()
}

// TestAutoscaleStepLoad: a generic backend under a step from one client to
// ten and back scales out (at once, in panic mode), holds while the load
// lasts, and scales back to one instance once the windows have passed —
// one change of direction, no flapping — with every request answered 200.
// It judges the shape of the instance count, not when each change came.
func TestAutoscaleStepLoad(t *testing.T) {
	backend := benchBackend(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := t.TempDir()
	// Two requests at once per instance, a target of 60 %: 1.2 per
	// instance, so one client wants one instance and ten want nine.
	writeFile(t, filepath.Join(dir, "deployment.yml"), genericDeployment(backend, "steps", "blue", "50ms", `request_settings:
  max_concurrent_requests_per_instance: 2
  request_timeout_ms: 20000
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 12
  target_utilization_percentage: 60
  polling_interval: 1
plumbline:
  autoscale:
    stable_window: 6
    panic_window: 2
    scale_down_delay: 4
`))
	s.must(t, "online-endpoint", "create", "--name", "steps", "--auth-mode", "key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	c := s.httpClient(t)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 32
	uri, key := s.endpoint(t, "steps").ScoringURI, s.keys(t, "steps").PrimaryKey

	stop := make(chan struct{})
	start := time.Now()
	traceOf := sampleScale(s, c, "steps", "blue", start, stop)
	l := newLoad(t, c, uri, key, `{"data":[[1,2,3,4]]}`)
	l.setClients(1)
	time.Sleep(4 * time.Second)
	stepUp := time.Now()
	l.setClients(10)
	time.Sleep(15 * time.Second)
	stepDown := time.Now()
	l.setClients(1)
	waitFor(t, 90*time.Second, "the count back at one instance after the load fell", func() (bool, string) {
		d := s.deployment(t, "steps", "blue")
		return len(d.Instances) == 1, d.String()
	})
	backAt := time.Now()
	l.stop()
	close(stop)
	trace := traceOf()

	var desired, actual []int
	var lines []string
	peak := 0
	for _, sm := range trace {
		desired = append(desired, sm.desired)
		actual = append(actual, sm.actual)
		peak = max(peak, sm.desired)
		lines = append(lines, fmt.Sprintf("%5.1fs %d/%d", sm.at.Seconds(), sm.desired, sm.actual))
	}
	t.Logf("step 1 → 10 clients: %d requests answered 200, %d failed; peak %d instances; back to one %.1fs after the load fell (stable window 6 s, scale-down delay 4 s)",
		l.ok.Load(), l.failed.Load(), peak, backAt.Sub(stepDown).Seconds())
	t.Logf("desired/actual every 250 ms (ten clients from %.1fs to %.1fs): %s",
		stepUp.Sub(start).Seconds(), stepDown.Sub(start).Seconds(), strings.Join(lines, ", "))
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the step (want 0); first: %s", n, <-l.errs)
	}
	if peak < 5 {
		t.Errorf("peak of %d instances under ten clients at 1.2 per instance; want it to scale out (about 9)", peak)
	}
	if r := autoscale.Reversals(desired); r != 1 {
		t.Errorf("the desired count changed direction %d times, want once (out, then back): %v", r, desired)
	}
	if r := autoscale.Reversals(actual); r > 1 {
		t.Errorf("the running count changed direction %d times, want at most once: %v", r, actual)
	}
	ev := s.must(t, "online-deployment", "events", "--name", "blue", "--endpoint-name", "steps", "-o", "tsv").stdout
	if !strings.Contains(ev, "scaled 1 → ") || !strings.Contains(ev, "% > 60 %") || !strings.Contains(ev, "% < 60 %") {
		t.Errorf("events lack the decisions out and back:\n%s", ev)
	}
	var st struct {
		ScaleStatus struct {
			Desired      int    `json:"desired_instances"`
			LastDecision string `json:"last_decision"`
		} `json:"scale_status"`
	}
	s.mustJSON(t, &st, "online-deployment", "show", "--name", "blue", "--endpoint-name", "steps")
	if st.ScaleStatus.Desired != 1 || !strings.Contains(st.ScaleStatus.LastDecision, " → 1: ") {
		t.Errorf("show's scale status %+v, want 1 instance and the last decision", st.ScaleStatus)
	}
}

// TestColdQueueBound: at zero instances, requests past max_pending_requests
// get 429 with Retry-After at once; the ones within it wait for the cold
// start and are answered.
func TestColdQueueBound(t *testing.T) {
	backend := benchBackend(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := t.TempDir()
	// Each request takes a second: the four held ones keep the bound full
	// while the others arrive.
	writeFile(t, filepath.Join(dir, "deployment.yml"), genericDeployment(backend, "bounded", "blue", "1s", `request_settings:
  request_timeout_ms: 20000
scale_settings:
  type: target_utilization
  min_instances: 0
  max_instances: 1
plumbline:
  autoscale:
    scale_to_zero_after: 1
    max_pending_requests: 4
`))
	s.must(t, "online-endpoint", "create", "--name", "bounded", "--auth-mode", "key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	waitFor(t, 60*time.Second, "the deployment scaled to zero", func() (bool, string) {
		d := s.deployment(t, "bounded", "blue")
		return len(d.Instances) == 0, d.String()
	})
	c := s.httpClient(t)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 32
	uri, key := s.endpoint(t, "bounded").ScoringURI, s.keys(t, "bounded").PrimaryKey
	warm(t, s, c, 12)
	type answer struct {
		status int
		retry  string
	}
	answers := make(chan answer, 12)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			answers <- answer{res.StatusCode, res.Header.Get("Retry-After")}
		}()
	}
	wg.Wait()
	close(answers)
	got := map[int]int{}
	for a := range answers {
		got[a.status]++
		if a.status == http.StatusTooManyRequests && a.retry == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	t.Logf("12 requests at once at zero instances, max pending 4: %v", got)
	if got[http.StatusOK] != 4 || got[http.StatusTooManyRequests] != 8 {
		t.Errorf("got %v, want 4 × 200 (held for the cold start) and 8 × 429", got)
	}
}

// TestScaleToZeroR: the seed's R deployment with min_instances 0 goes to
// zero instances after scale_to_zero_after without a request — on
// plumber's own server its R process stops; on the lean runtime it parks,
// its workers stopped and its loaded session kept — and from zero a burst
// of 50 requests with 5 s deadlines is all answered: held while an
// instance starts (or forks a worker), then served. The cold-start metric
// measures the wait; its value is logged for each runtime.
func TestScaleToZeroR(t *testing.T) {
	dir := irisFolder(t)
	body := sampleRequest(t, dir)
	dd := newDataDir(t)
	s := startServer(t, dd)
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--auth-mode", "key")
	c := s.httpClient(t)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	uri, key := s.endpoint(t, irisEndpoint).ScoringURI, s.keys(t, irisEndpoint).PrimaryKey
	// The lean runtime (R's default) is the subject: 5 s deadlines, as
	// issue's scenario says, and its fork keeps well within them on a
	// loaded machine. plumber's own server starts R from nothing, which a
	// loaded 2-core machine can stretch past 5 s: it gets 20 s.
	for _, tc := range []struct {
		rt      string
		timeout string
		goal    string
	}{{"lean", "5000", "≤ 300 ms with the lean runtime's fork"}, {"plumber", "20000", "≤ 1.5 s with plumber's own server"}} {
		rt := tc.rt
		t.Run(rt, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "zero-"+rt+".yml"), `name: `+rt+`
endpoint_name: `+irisEndpoint+`
code_configuration:
  code: ./src
  scoring_script: plumber.R
model: azureml:iris-crate@latest
environment:
  image: myregistry.azurecr.io/r-iris-plumber:1
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS2_v2
request_settings:
  request_timeout_ms: `+tc.timeout+`
scale_settings:
  type: target_utilization
  min_instances: 0
  max_instances: 1
plumbline:
  r_runtime: `+rt+`
  autoscale:
    scale_to_zero_after: 2
    max_pending_requests: 64
`)
			s.mustIn(t, dir, "online-deployment", "create", "-f", "zero-"+rt+".yml")
			// plumber's own server stops; the lean runtime's instance parks:
			// no worker, its loaded session kept (keep_loaded_for).
			waitFor(t, 60*time.Second, rt+" scaled to zero", func() (bool, string) {
				d := s.deployment(t, irisEndpoint, rt)
				if rt == "lean" {
					return len(d.Instances) == 1 && d.Instances[0].State == "Parked" && !d.Instances[0].Ready, d.String()
				}
				return len(d.Instances) == 0, d.String()
			})
			if procs := instanceLeaders(dd); rt == "plumber" && len(procs) != 0 {
				t.Errorf("at zero instances, instance processes still run: %v", procs)
			}
			warm(t, s, c, 50)
			before := metricValue(s.metrics(t, c), "plumbline_cold_start_seconds_count", `deployment="`+rt+`"`)
			start := time.Now()
			var wg sync.WaitGroup
			replies := make(chan string, 50)
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := tryScore(c, uri, key, rt, body)
					if err != nil {
						replies <- err.Error()
						return
					}
					replies <- fmt.Sprintf("%d %s", r.status, r.body)
				}()
			}
			wg.Wait()
			took := time.Since(start)
			close(replies)
			got := map[string]int{}
			for r := range replies {
				got[r]++
			}
			if got["200 "+irisPrediction] != 50 {
				t.Errorf("50 requests from zero (%s ms deadlines): got %v, want 50 × 200 %s", tc.timeout, got, irisPrediction)
			}
			m := s.metrics(t, c)
			lbl := `deployment="` + rt + `"`
			n := metricValue(m, "plumbline_cold_start_seconds_count", lbl) - before
			sum := metricValue(m, "plumbline_cold_start_seconds_sum", lbl)
			if n != 1 {
				t.Errorf("cold starts counted: %v, want 1", n)
			}
			t.Logf("%s: 50 requests from zero answered in %s; cold start (first request held → instance ready) %.2f s (plumbline_cold_start_seconds; goal %s)",
				rt, took.Round(time.Millisecond), sum, tc.goal)
			ev := s.must(t, "online-deployment", "events", "--name", rt, "--endpoint-name", irisEndpoint, "-o", "tsv").stdout
			wants := []string{"scaled 1 → 0: no request for", "request(s) waiting and no instance running (scale from zero)"}
			if rt == "lean" {
				wants = append(wants, "Parked instance lean-0: scaled to zero", "Unparked instance lean-0: 1 worker(s) forked from its loaded R session")
			}
			for _, want := range wants {
				if !strings.Contains(ev, want) {
					t.Errorf("events lack %q:\n%s", want, ev)
				}
			}
			s.must(t, "online-deployment", "delete", "--name", rt, "--endpoint-name", irisEndpoint, "--yes")
		})
	}
}

// TestAutoscaleAcrossGateways: two gateway replicas each carrying three
// requests at once scale one deployment for six — the autoscaler on the
// leading control replica sums what every gateway reports through the
// shared PostgreSQL store (one gateway alone would ask for three).
func TestAutoscaleAcrossGateways(t *testing.T) {
	backend := benchBackend(t)
	pg := pgtest.URL(t)
	dd := newDataDir(t)
	ctl := startReplica(t, dd, pg, "control", "control-a")
	gws := []*replica{startReplica(t, dd, pg, "gateway", "gateway-1"), startReplica(t, dd, pg, "gateway", "gateway-2")}
	waitFor(t, 15*time.Second, "the control replica to lead", func() (bool, string) { return ctl.leads(), "" })
	dir := t.TempDir()
	// One request at once per instance at a target of 100 %: the desired
	// count is the concurrency over every gateway.
	writeFile(t, filepath.Join(dir, "deployment.yml"), genericDeployment(backend, "shared", "blue", "50ms", `request_settings:
  request_timeout_ms: 20000
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 10
  target_utilization_percentage: 100
plumbline:
  autoscale:
    stable_window: 4
    panic_window: 1
    scale_down_delay: 2
`))
	replicaCLI(t, dd, ctl, dir, "online-endpoint", "create", "--name", "shared", "--auth-mode", "key")
	replicaCLI(t, dd, ctl, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	var keys keysView
	decodeJSON(t, replicaCLI(t, dd, ctl, dir, "online-endpoint", "get-credentials", "--name", "shared", "-o", "json"), &keys)
	c := (&server{dataDir: dd}).httpClient(t)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 16
	var loads []*load
	for _, g := range gws {
		l := newLoad(t, c, g.url+"/endpoints/shared/score", keys.PrimaryKey, `{}`)
		l.setClients(3)
		loads = append(loads, l)
	}
	defer func() {
		for _, l := range loads {
			l.stop()
		}
	}()
	type scaleView struct {
		ScaleStatus struct {
			Desired      int    `json:"desired_instances"`
			Ready        int    `json:"ready_instances"`
			LastDecision string `json:"last_decision"`
		} `json:"scale_status"`
	}
	var sv scaleView
	waitFor(t, 60*time.Second, "six instances for three requests at once through each of two gateways", func() (bool, string) {
		decodeJSON(t, replicaCLI(t, dd, ctl, dir, "online-deployment", "show", "--name", "blue", "--endpoint-name", "shared", "-o", "json"), &sv)
		return sv.ScaleStatus.Desired >= 5 && sv.ScaleStatus.Ready >= 5, fmt.Sprintf("%+v", sv.ScaleStatus)
	})
	for _, l := range loads {
		l.stop()
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%d requests failed through a gateway; first: %s", n, <-l.errs)
		}
	}
	t.Logf("two gateways × 3 requests at once: desired %d, ready %d (%s); %d and %d requests answered through the two gateways",
		sv.ScaleStatus.Desired, sv.ScaleStatus.Ready, sv.ScaleStatus.LastDecision, loads[0].ok.Load(), loads[1].ok.Load())
}
