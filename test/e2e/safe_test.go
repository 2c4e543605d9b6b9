package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The safe-rollout tests run the classifier (this test binary) as blue and
// green deployments of one endpoint.

// safeEndpoint creates endpoint ep with blue (model cls:1) serving all the
// traffic, and green from model version greenModel; it returns the
// folder of the documents.
func safeEndpoint(t *testing.T, s *server, ep string, greenFlip int, blueExtra, greenExtra string, greenEnv map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	s.must(t, "model", "create", "--name", "cls", "--version", "1", "--path", classifierModel(t, 0))
	s.must(t, "model", "create", "--name", "cls", "--version", "2", "--path", classifierModel(t, greenFlip))
	epFile := filepath.Join(dir, "endpoint.yml")
	if err := os.WriteFile(epFile, []byte("name: "+ep+"\nauth_mode: key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.must(t, "online-endpoint", "create", "-f", epFile)
	s.mustIn(t, dir, "online-deployment", "create", "-f", classifierDeployment(t, dir, "blue", ep, "azureml:cls:1", nil, blueExtra), "--all-traffic")
	s.mustIn(t, dir, "online-deployment", "create", "-f", classifierDeployment(t, dir, "green", ep, "azureml:cls:2", greenEnv, greenExtra))
	return dir
}

// loader scores the endpoint from several goroutines until stopped,
// counting answers by status.
type loader struct {
	mu     sync.Mutex
	status map[int]int
	stop   context.CancelFunc
	done   sync.WaitGroup
	sent   atomic.Int64
}

func startLoad(t *testing.T, s *server, ep string, workers int) *loader {
	t.Helper()
	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	key := s.keys(t, ep).PrimaryKey
	ctx, cancel := context.WithCancel(context.Background())
	l := &loader{status: map[int]int{}, stop: cancel}
	for w := range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := w; ctx.Err() == nil; i += workers {
				r, err := tryScore(c, uri, key, "", fmt.Sprintf(`{"data": [[%d], [%d]]}`, i, i+1))
				l.sent.Add(1)
				l.mu.Lock()
				if err != nil {
					l.status[-1]++
				} else {
					l.status[r.status]++
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *loader) halt() { l.stop(); l.done.Wait() }

// failures are answers other than 200.
func (l *loader) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for code, c := range l.status {
		if code != 200 {
			n += c
		}
	}
	return n
}

type rolloutView struct {
	ID      int64  `json:"id"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
	Step    int    `json:"step"`
	Percent int    `json:"percent"`
	History []struct {
		Cause   string `json:"cause"`
		Entries []struct {
			Deployment  string `json:"deployment"`
			Traffic     int    `json:"traffic"`
			Model       string `json:"model"`
			ModelDigest string `json:"model_digest"`
		} `json:"entries"`
	} `json:"history"`
	StepStartedAt time.Time `json:"step_started_at"`
}

func (s *server) rollout(t *testing.T, ep, name string) rolloutView {
	t.Helper()
	var r rolloutView
	s.mustJSON(t, &r, "online-deployment", "rollout", "status", "--name", name, "--endpoint-name", ep)
	return r
}

// TestShadowComparisonReportsTheKnownRate: green flips every 10th class;
// mirrored to at 50 %, the comparison (added up in the store, read with
// online-endpoint compare) reports 90 % agreement within one point, with
// the flips in its class matrix and in /metrics; every answer carries its
// provenance.
func TestShadowComparisonReportsTheKnownRate(t *testing.T) {
	s := startServer(t, newDataDir(t))
	const ep = "shadow-rate"
	safeEndpoint(t, s, ep, 10, "", "", nil)
	s.must(t, "online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=50")

	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	key := s.keys(t, ep).PrimaryKey
	var blue deploymentView
	s.mustJSON(t, &blue, "online-deployment", "show", "--name", "blue", "--endpoint-name", ep)
	req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(`{"data": [[1]]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for h, want := range map[string]string{"azureml-model-deployment": "blue", "Plumbline-Deployment": "blue", "Plumbline-Model": "cls:1", "Plumbline-Model-Digest": blue.ModelDigest} {
		if got := res.Header.Get(h); got != want || want == "" {
			t.Errorf("provenance header %s: got %q, want %q", h, got, want)
		}
	}

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1200; i += 4 {
				rows := make([]string, 1+i%4)
				for j := range rows {
					rows[j] = fmt.Sprintf("[%d]", i+j)
				}
				if r := score(t, c, uri, key, "", `{"data": [`+strings.Join(rows, ",")+`]}`); r.status != 200 {
					t.Errorf("request %d: %d %s", i, r.status, r.body)
					return
				}
			}
		}()
	}
	wg.Wait()

	type cmpView struct {
		Comparisons []struct {
			Live, Shadow       string
			Pairs, Predictions int64
			Agreed             int64
			Agreement          float64
			Incomparable       int64
			Flips              []struct {
				Live, Shadow string
				Count        int64
			}
			ShadowRequests         int64 `json:"shadow_requests"`
			LiveP99Ms, ShadowP99Ms float64
		} `json:"comparisons"`
	}
	var cv cmpView
	// Every mirrored copy answered and compared: the store's figures stop
	// moving once the last pair is in.
	var last int64 = -1
	waitFor(t, 30*time.Second, "the comparison to settle", func() (bool, string) {
		s.mustJSON(t, &cv, "online-endpoint", "compare", "--name", ep)
		if len(cv.Comparisons) != 1 {
			return false, fmt.Sprint(cv)
		}
		n := cv.Comparisons[0].Pairs
		settled := n > 0 && n == last
		last = n
		time.Sleep(300 * time.Millisecond)
		return settled, fmt.Sprintf("%d pairs", n)
	})
	p := cv.Comparisons[0]
	if p.Live != "blue" || p.Shadow != "green" || p.Pairs < 400 || p.Incomparable != 0 {
		t.Fatalf("comparison %+v: want blue → green, about 600 pairs, none incomparable", p)
	}
	if math.Abs(p.Agreement-0.9) > 0.01 {
		t.Errorf("agreement %.4f (%d of %d predictions), want 90 %% ± 1 point", p.Agreement, p.Agreed, p.Predictions)
	}
	var flips int64
	for _, f := range p.Flips {
		flips += f.Count
	}
	if flips != p.Predictions-p.Agreed {
		t.Errorf("the class matrix holds %d flips, want every disagreement (%d)", flips, p.Predictions-p.Agreed)
	}
	table := s.must(t, "online-endpoint", "compare", "--name", ep, "-o", "table").stdout
	for _, want := range []string{"Mirror blue → green", "Agreement", "Classes (rows: live, columns: shadow)", "Sampled disagreements"} {
		if !strings.Contains(table, want) {
			t.Errorf("the compare table lacks %q:\n%s", want, table)
		}
	}
	t.Logf("online-endpoint compare --name %s:\n%s", ep, table)
	m := s.metrics(t, c)
	if !regexp.MustCompile(`plumbline_shadow_predictions_total\{endpoint="shadow-rate",live="blue",result="disagree",shadow="green"\} [1-9]`).MatchString(m) ||
		!strings.Contains(m, `plumbline_shadow_class_flips_total{endpoint="shadow-rate",live="blue",live_class=`) {
		t.Errorf("/metrics lacks the comparison's counters")
	}
}

// TestRolloutRollsBackWithinItsSample: green passes its 10 % step, then
// fails from the start of its 30 % step; the rollout rolls back to blue
// with the gate and figures in the reason, and callers saw no failed
// request beyond the gate's own sample.
func TestRolloutRollsBackWithinItsSample(t *testing.T) {
	s := startServer(t, newDataDir(t))
	const ep = "rollback"
	failFile := filepath.Join(t.TempDir(), "fail")
	safeEndpoint(t, s, ep, 0, "", "", map[string]string{"FAIL_FILE": failFile})
	s.must(t, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep,
		"--steps", "10,30,100", "--min-requests", "20", "--bake-time", "0", "--max-latency-ratio", "0")

	// Step 1 (10 %) with sequential requests, until the rollout moves to
	// step 2: then nothing is in flight when green starts failing.
	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	key := s.keys(t, ep).PrimaryKey
	for i := 0; ; i++ {
		if r := score(t, c, uri, key, "", fmt.Sprintf(`{"data": [[%d]]}`, i)); r.status != 200 {
			t.Fatalf("step 1: %d %s", r.status, r.body)
		}
		if i%5 == 0 {
			if r := s.rollout(t, ep, "green"); r.Step == 1 {
				break
			} else if r.State != "Running" || i > 5000 {
				t.Fatalf("the rollout did not reach step 2: %+v", r)
			}
		}
	}
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, s, ep, 6)
	var ro rolloutView
	waitFor(t, 60*time.Second, "the rollback", func() (bool, string) {
		ro = s.rollout(t, ep, "green")
		return ro.State == "RolledBack", fmt.Sprintf("%s step %d: %s", ro.State, ro.Step, ro.Reason)
	})
	// Blue alone serves now: the load goes on without a failure.
	before := l.failures()
	time.Sleep(500 * time.Millisecond)
	l.halt()
	after := l.failures()

	m := regexp.MustCompile(`^step 2 of 3 \(30 %\): gateway [^:]+: error rate [0-9.]+ % \((\d+) of (\d+) requests\) > max 1 %$`).FindStringSubmatch(ro.Reason)
	if m == nil {
		t.Fatalf("reason %q: want the step, the gateway, the error-rate gate and its figures", ro.Reason)
	}
	failed, sample := atoi(t, m[1]), atoi(t, m[2])
	if sample != 20 {
		t.Errorf("the gate judged %d requests, want its sample of 20", sample)
	}
	if before != failed || after != before {
		t.Errorf("callers saw %d failed requests by the rollback and %d in all; want exactly the %d failures of the gate's sample", before, after, failed)
	}
	t.Logf("rolled back: %s; %d requests sent, %d failed (all in the gate's sample)", ro.Reason, l.sent.Load(), after)
	if got := s.endpoint(t, ep).Traffic; got["blue"] != 100 || got["green"] != 0 {
		t.Errorf("traffic after the rollback: %v, want blue 100", got)
	}
	hist := s.must(t, "online-deployment", "rollout", "history", "--endpoint-name", ep, "-o", "table").stdout
	for _, want := range []string{"rollout of green started: step 1 of 3 (10 %)", "step 2 of 3 (30 %)", "rolled back at step 2 of 3 (30 %)", "cls:2"} {
		if !strings.Contains(hist, want) {
			t.Errorf("the history lacks %q:\n%s", want, hist)
		}
	}
	evs := s.must(t, "online-deployment", "events", "--name", "green", "--endpoint-name", ep, "--query", "[?reason=='RolloutRolledBack'].message", "-o", "tsv").stdout
	if !strings.Contains(evs, "traffic back to blue=100") {
		t.Errorf("no RolloutRolledBack event saying where the traffic went: %q", evs)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBadCandidateRolledBackInShadow: green pins a wrong model version
// (cls:2 flips every 3rd class); its shadow step's agreement gate rolls it
// back before it ever answers a caller.
func TestBadCandidateRolledBackInShadow(t *testing.T) {
	s := startServer(t, newDataDir(t))
	const ep = "badmodel"
	safeEndpoint(t, s, ep, 3, "", "", nil)
	l := startLoad(t, s, ep, 4)
	r := s.cli(t, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep,
		"--shadow", "50", "--min-requests", "30", "--bake-time", "0", "--max-latency-ratio", "0", "--wait")
	l.halt()
	if r.code != 1 || !strings.Contains(r.stderr, "RolloutRolledBack") {
		t.Fatalf("rollout --wait of a bad candidate: want exit 1 after RolloutRolledBack\n%s", r)
	}
	ro := s.rollout(t, ep, "green")
	if !regexp.MustCompile(`^step 1 of 5 \(shadow 50 %\): agreement 6[0-9.]+ % \(\d+ of \d+ predictions\) < min 95 %$`).MatchString(ro.Reason) {
		t.Errorf("reason %q: want the shadow step's agreement gate with its figures", ro.Reason)
	}
	if l.failures() != 0 {
		t.Errorf("%d caller requests failed; a shadow step must not cost callers anything", l.failures())
	}
	if got := s.endpoint(t, ep); got.Traffic["blue"] != 100 || len(got.MirrorTraffic) != 0 && got.MirrorTraffic["green"] != 0 {
		t.Errorf("after the rollback: traffic %v, mirror %v; want blue 100 and no mirror", got.Traffic, got.MirrorTraffic)
	}
	t.Logf("%s", r.stderr)
}

// TestRolloutSurvivesKill9: the server is killed with SIGKILL in the
// middle of a rollout; started again on the same data dir, it carries on
// from the same step and finishes.
func TestRolloutSurvivesKill9(t *testing.T) {
	dd := newDataDir(t)
	s := startServer(t, dd)
	const ep = "kill9"
	safeEndpoint(t, s, ep, 0, "", "", nil)
	s.must(t, "online-deployment", "rollout", "--name", "green", "--endpoint-name", ep,
		"--steps", "10,50,100", "--min-requests", "15", "--bake-time", "2", "--max-latency-ratio", "0")
	l := startLoad(t, s, ep, 2)
	var before rolloutView
	waitFor(t, 60*time.Second, "step 2", func() (bool, string) {
		before = s.rollout(t, ep, "green")
		return before.Step == 1, fmt.Sprintf("%s step %d", before.State, before.Step)
	})
	l.halt()
	s.kill9(t)

	s2 := startServer(t, dd)
	after := s2.rollout(t, ep, "green")
	if after.ID != before.ID || after.State != "Running" || after.Step != 1 || !after.StepStartedAt.Equal(before.StepStartedAt) {
		t.Fatalf("after kill -9 and a restart: rollout %+v; want rollout %d still Running at step 2 since %s", after, before.ID, before.StepStartedAt)
	}
	if got := s2.endpoint(t, ep).Traffic; got["green"] != 50 || got["blue"] != 50 {
		t.Errorf("traffic after the restart: %v, want blue 50 green 50", got)
	}
	l2 := startLoad(t, s2, ep, 2)
	var done rolloutView
	waitFor(t, 90*time.Second, "the rollout to finish", func() (bool, string) {
		done = s2.rollout(t, ep, "green")
		return done.State == "Succeeded", fmt.Sprintf("%s step %d: %s", done.State, done.Step, done.Reason)
	})
	l2.halt()
	if l.failures()+l2.failures() != 0 {
		t.Errorf("%d requests failed (before the kill: %v; after: %v)", l.failures()+l2.failures(), l.status, l2.status)
	}
	if got := s2.endpoint(t, ep).Traffic; got["green"] != 100 {
		t.Errorf("after the rollout: traffic %v, want green 100", got)
	}
	var causes []string
	for _, h := range done.History {
		causes = append(causes, h.Cause)
	}
	want := fmt.Sprintf("rollout of green started: step 1 of 3 (10 %%)|rollout %[1]d of green: step 2 of 3 (50 %%)|rollout %[1]d of green: step 3 of 3 (100 %%)|rollout %[1]d of green succeeded", done.ID)
	if strings.Join(causes, "|") != want {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(causes, "\n"), strings.ReplaceAll(want, "|", "\n"))
	}
}

// TestCaptureRedactsAndNeverWaits: green captures every request, with the
// SSN removed and the customer id hashed, to files and to an HTTP sink that
// never answers; under load every request is answered, the sink's queue
// drops (and counts) what it cannot hold, and no byte of a redacted value
// reaches the files, the sink, the comparison's diffs or the log.
func TestCaptureRedactsAndNeverWaits(t *testing.T) {
	// A sink that reads the first request and then hangs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sinkMu sync.Mutex
	var sinkGot bytes.Buffer
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang); ln.Close() })
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sinkMu.Lock()
		sinkGot.Write(b)
		sinkMu.Unlock()
		<-hang
	}))

	dd := newDataDir(t)
	s := startServer(t, dd)
	const ep = "capture"
	capture := fmt.Sprintf(`plumbline:
  capture:
    sampling_rate: 1
    redact: ["$..ssn"]
    hash: ["$.customer_id"]
    sink: {url: "http://%s/ingest"}`, ln.Addr())
	safeEndpoint(t, s, ep, 10, capture, "", nil)
	s.must(t, "online-endpoint", "update", "--name", ep, "--mirror-traffic", "green=50")

	c := s.httpClient(t)
	uri := s.endpoint(t, ep).ScoringURI
	key := s.keys(t, ep).PrimaryKey
	var ssns, customers []string
	var wg sync.WaitGroup
	var failed atomic.Int32
	began := time.Now()
	const n = 6000
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				body := fmt.Sprintf(`{"data": [[%d]], "ssn": "%03d-%02d-%04d", "customer_id": "cust-%06d"}`, i, 100+i%900, i%100, i, i)
				if r, err := tryScore(c, uri, key, "", body); err != nil || r.status != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		ssns = append(ssns, fmt.Sprintf("%03d-%02d-%04d", 100+i%900, i%100, i))
		customers = append(customers, fmt.Sprintf("cust-%06d", i))
	}
	wg.Wait()
	t.Logf("%d requests in %s", n, time.Since(began).Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed while capturing", failed.Load(), n)
	}
	metric := func(name, labels string) float64 {
		re := regexp.MustCompile(regexp.QuoteMeta(name+"{"+labels+"}") + ` ([0-9.e+]+)`)
		if m := re.FindStringSubmatch(s.metrics(t, c)); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
		return 0
	}
	waitFor(t, 30*time.Second, "every record written", func() (bool, string) {
		w := metric("plumbline_capture_records_total", `deployment="blue",endpoint="capture",result="written"`)
		d := metric("plumbline_capture_records_total", `deployment="blue",endpoint="capture",result="dropped"`)
		return w+d == n, fmt.Sprintf("%v written, %v dropped", w, d)
	})
	written := metric("plumbline_capture_records_total", `deployment="blue",endpoint="capture",result="written"`)
	sinkDropped := metric("plumbline_capture_sink_records_total", `deployment="blue",endpoint="capture",result="dropped"`)
	if sinkDropped == 0 {
		t.Errorf("the hanging sink's queue dropped nothing (capture sink records: %v dropped); want its overflow dropped and counted", sinkDropped)
	}
	t.Logf("%d requests answered while capturing: %v records written to files, the hanging HTTP sink dropped %v", n, written, sinkDropped)

	var recs []struct {
		Model   string `json:"model"`
		Request struct {
			CustomerID string `json:"customer_id"`
		} `json:"request"`
	}
	r := s.must(t, "online-deployment", "capture", "--name", "blue", "--endpoint-name", ep, "--limit", "5", "-o", "json")
	decodeJSON(t, r, &recs)
	if len(recs) != 5 || !strings.HasPrefix(recs[0].Request.CustomerID, "hmac-sha256:") || recs[0].Model != "cls:1" {
		t.Errorf("captured records: %+v", recs)
	}

	// The bytes of everything written: capture files, the sink, the
	// comparison's diffs (blue's rules apply to them), the server log.
	var all bytes.Buffer
	err = filepath.WalkDir(filepath.Join(dd, "capture"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		all.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files := all.Len()
	sinkMu.Lock()
	all.Write(sinkGot.Bytes())
	sinkMu.Unlock()
	all.WriteString(s.must(t, "online-endpoint", "compare", "--name", ep, "--diffs", "50", "-o", "json").stdout)
	all.WriteString(s.log.String())
	t.Logf("checked %d bytes written (%d of them in capture files) for the %d redacted values", all.Len(), files, 2*n)
	if files == 0 || !bytes.Contains(all.Bytes(), []byte("request_id")) {
		t.Fatal("no capture bytes to check")
	}
	// One pass over the bytes: every string shaped like a redacted value
	// is looked up among them.
	secret := make(map[string]bool, 2*n)
	for i := range ssns {
		secret[ssns[i]], secret[customers[i]] = true, true
	}
	shaped := regexp.MustCompile(`[0-9]{3}-[0-9]{2}-[0-9]{4}|cust-[0-9]{6}`)
	for _, v := range []string{ssns[0], ssns[n-1], customers[0], customers[n-1]} {
		if string(shaped.Find([]byte(`{"x": "`+v+`"}`))) != v {
			t.Fatalf("the check would not see %s", v)
		}
	}
	for _, m := range shaped.FindAll(all.Bytes(), -1) {
		if secret[string(m)] {
			t.Fatalf("a redacted value (%s) was written", m)
		}
	}
	if bytes.Contains(all.Bytes(), []byte(`"ssn"`)) {
		t.Error(`a redacted field ("ssn") was written`)
	}
	for _, mode := range []string{"capture", filepath.Join("capture", ep), filepath.Join("capture", ep, "blue")} {
		if st, err := os.Stat(filepath.Join(dd, mode)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want a 0700 folder", mode, err)
		}
	}
}
