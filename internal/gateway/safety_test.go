package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/figures"
)

func TestProvenanceHeaders(t *testing.T) {
	forger := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hdrPlumblineModel, "forged:9")
		w.Header().Set(hdrPlumblineModelDigest, "sha256:forged")
		w.Header().Set(hdrPlumblineDeployment, "forged")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	blue := dep("blue", forger)
	blue.ModelName, blue.ModelVersion, blue.ModelDigest = "iris", "2", "sha256:2222"
	green := dep("green", forger)
	green.ModelName, green.ModelVersion, green.ModelDigest = "iris", "3", "sha256:3333"
	// An instance of the previous version during a rolling update.
	green.Instances[0].ModelName, green.Instances[0].ModelVersion, green.Instances[0].ModelDigest = "iris", "1", "sha256:1111"
	ep := endpoint("ep", blue, green)
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(ep))

	for _, tc := range []struct {
		deployment, model, digest string
	}{{"blue", "iris:2", "sha256:2222"}, {"green", "iris:1", "sha256:1111"}} {
		h := bearer(testKey)
		h["azureml-model-deployment"] = tc.deployment
		res, _ := call(t, front, "POST", "/endpoints/ep/score", h, `{}`)
		got := [4]string{res.Header.Get("azureml-model-deployment"), res.Header.Get(hdrPlumblineDeployment), res.Header.Get(hdrPlumblineModel), res.Header.Get(hdrPlumblineModelDigest)}
		want := [4]string{tc.deployment, tc.deployment, tc.model, tc.digest}
		if got != want || len(res.Header.Values(hdrPlumblineModel)) != 1 {
			t.Errorf("%s: got headers %q (%d model values), want %q", tc.deployment, got, len(res.Header.Values(hdrPlumblineModel)), want)
		}
	}
	// Through ReverseProxy (a streamed body) too.
	h := bearer(testKey)
	req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep/score", io.MultiReader(strings.NewReader(`{"x":"`), strings.NewReader(strings.Repeat("a", 100<<10)+`"}`)))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if m := res.Header.Values(hdrPlumblineModel); len(m) != 1 || m[0] != "iris:2" {
		t.Errorf("streamed request: model header %q, want [iris:2]", m)
	}
}

// flipper is a classifier: each row of {"data": [[x], …]} gets a class;
// with flipEvery > 0 every flipEvery-th prediction it makes (counting
// across requests) gets another class.
type flipper struct {
	flipEvery int64
	n         atomic.Int64
	status    atomic.Int32 // nonzero: answer with this status
}

var classes = []string{"setosa", "versicolor", "virginica"}

func (f *flipper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct{ Data [][]int }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if s := f.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		_, _ = io.WriteString(w, `{"error":"failing on purpose"}`)
		return
	}
	out := make([]string, len(in.Data))
	for i, row := range in.Data {
		c := row[0] % 3
		if f.flipEvery > 0 && f.n.Add(1)%f.flipEvery == 0 {
			c = (c + 1) % 3
		}
		out[i] = classes[c]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"species": out})
}

// rows is a request of n rows starting at i.
func rows(i, n int) string {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for j := range n {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "[%d]", i+j)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestShadowAgreement: a shadow that flips every 10th class is reported
// at 90 % agreement within one point, with its flips in the class matrix.
func TestShadowAgreement(t *testing.T) {
	live := backend(t, (&flipper{}).ServeHTTP)
	shadow := backend(t, (&flipper{flipEvery: 10}).ServeHTTP)
	green := dep("green", shadow)
	green.MaxConcurrentPerInstance = 256 // room for every copy: none is dropped at admission
	ep := endpoint("ep", dep("blue", live), green)
	ep.Mirror = map[string]int{"green": 100}
	ep.Generation = 7
	g, reg, front := newTestGateway(t, Config{MirrorQueue: 1024, CompareQueue: 4096})
	g.Update(snapshot(ep))

	const requests = 400
	began := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < requests; i += 4 {
				res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), rows(i, 1+i%5))
				if res.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d live requests failed", failed.Load())
	}
	labels := map[string]string{"endpoint": "ep", "live": "blue", "shadow": "green"}
	compared := func() float64 {
		n := 0.0
		for _, r := range []string{"agree", "disagree", "incomparable", "dropped"} {
			n += metricValue(t, reg, "plumbline_shadow_pairs_total", with(labels, "result", r))
		}
		return n
	}
	waitFor(t, "every pair compared", func() bool { return compared() == requests })
	if d := metricValue(t, reg, "plumbline_shadow_pairs_total", with(labels, "result", "dropped")); d > 0 {
		t.Fatalf("%v pairs dropped; the test needs all of them", d)
	}

	var pair *figures.Pair
	for _, m := range g.TakeFigures() {
		if m.Kind == KindMirror && m.Subject == "blue>green" && m.Epoch == 7 {
			pair = m.Pair
		}
	}
	if pair == nil {
		t.Fatal("no mirror figures for blue>green in epoch 7")
	}
	if a := pair.Agreement(); math.Abs(a-0.9) > 0.01 {
		t.Errorf("agreement %.4f (%d of %d predictions), want 0.90 ± 0.01", a, pair.Agreed, pair.Predictions)
	}
	flipped := int64(0)
	for _, f := range pair.Flips() {
		flipped += f.Count
	}
	if flipped != pair.Predictions-pair.Agreed || flipped == 0 {
		t.Errorf("flip matrix holds %d flips, want %d (every disagreement)", flipped, pair.Predictions-pair.Agreed)
	}
	if pair.Pairs != requests || pair.LiveLatency.Count() != requests || pair.ShadowRequests != requests || pair.ShadowErrors != 0 {
		t.Errorf("got %d pairs, %d live latencies, %d shadow requests, %d shadow errors; want %d, %d, %d, 0",
			pair.Pairs, pair.LiveLatency.Count(), pair.ShadowRequests, pair.ShadowErrors, requests, requests, requests)
	}
	diffs := g.TakeDiffs()
	elapsed := time.Since(began)
	if len(diffs) == 0 || !strings.Contains(diffs[0].Diff, " vs ") || diffs[0].Live != "blue" || len(diffs[0].Request) == 0 {
		t.Errorf("diff samples: %+v, want at least one naming where the answers differ", diffs)
	}
	if limit := int(elapsed/diffEvery) + 1; len(diffs) > limit {
		t.Errorf("%d diffs sampled in %v; want at most one a second (%d)", len(diffs), elapsed, limit)
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// TestRolloutHold: a candidate failing from the start of its step fails
// exactly its sample, and not one request more: then its share goes to the
// starting split.
func TestRolloutHold(t *testing.T) {
	for _, tc := range []struct {
		name         string
		failing      bool
		wantFailures int
	}{{"failing candidate", true, 20}, {"healthy candidate", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			blue := backend(t, (&flipper{}).ServeHTTP)
			cand := &flipper{}
			if tc.failing {
				cand.status.Store(500)
			}
			var candSeen atomic.Int32
			green := backend(t, func(w http.ResponseWriter, r *http.Request) {
				candSeen.Add(1)
				cand.ServeHTTP(w, r)
			})
			ep := endpoint("ep", dep("blue", blue), dep("green", green))
			ep.Traffic = map[string]int{"blue": 70, "green": 30}
			ep.Generation = 3
			ep.Rollout = &Rollout{Candidate: "green", MinRequests: 20, Fallback: map[string]int{"blue": 100},
				MaxErrorRate: 0.05, MaxLatencyRatio: 0, MaxContractViolationRate: 0.01}
			g, reg, front := newTestGateway(t, Config{})
			g.Update(snapshot(ep))

			var failures atomic.Int32
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < 400; i += 8 {
						res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), rows(i, 1))
						if res.StatusCode != 200 {
							failures.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if got := int(failures.Load()); got != tc.wantFailures {
				t.Errorf("%d requests failed, want %d (the sample)", got, tc.wantFailures)
			}
			var cf *figures.Deployment
			for _, m := range g.TakeFigures() {
				if m.Kind == KindDeployment && m.Subject == "green" && m.Epoch == 3 {
					cf = m.Deployment
				}
			}
			if cf == nil {
				t.Fatal("no figures for green")
			}
			trips := metricValue(t, reg, "plumbline_rollout_gate_trips_total", map[string]string{"endpoint": "ep", "deployment": "green"})
			if tc.failing {
				if cf.Requests != 20 || cf.Errors != 20 || !strings.HasPrefix(cf.Tripped, "error rate 100 % (20 of 20 requests)") || trips != 1 {
					t.Errorf("green: %d requests, %d errors, tripped %q, %v trips; want 20, 20, the error rate, 1", cf.Requests, cf.Errors, cf.Tripped, trips)
				}
				select {
				case <-g.FlushNow():
				default:
					t.Error("a breach did not ask for the figures to be written at once")
				}
			} else if cf.Requests <= 20 || cf.Tripped != "" || int(candSeen.Load()) != int(cf.Requests) {
				t.Errorf("green served %d requests (backend saw %d), tripped %q; want more than its sample of 20", cf.Requests, candSeen.Load(), cf.Tripped)
			}
		})
	}
}

// sinkFunc is a CaptureSink.
type sinkFunc func(*CaptureRecord) error

func (f sinkFunc) WriteCapture(r *CaptureRecord) error { return f(r) }

// keepRecord copies a record a test sink keeps past WriteCapture (the
// gateway reuses the record and its buffers once WriteCapture returns).
func keepRecord(r *CaptureRecord) *CaptureRecord {
	c := *r
	c.Request, c.Response = bytes.Clone(r.Request), bytes.Clone(r.Response)
	c.reqBody, c.respBody, c.reqBuf, c.respBuf = nil, nil, nil, nil
	return &c
}

func TestCaptureRedacts(t *testing.T) {
	echo := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":%s,"score":0.5}`, b)
	})
	var mu sync.Mutex
	var lines bytes.Buffer
	sink := sinkFunc(func(r *CaptureRecord) error {
		b, err := json.Marshal(r)
		mu.Lock()
		lines.Write(b)
		lines.WriteByte('\n')
		mu.Unlock()
		return err
	})
	blue := dep("blue", echo)
	blue.ModelName, blue.ModelVersion, blue.ModelDigest = "iris", "2", "sha256:2222"
	blue.Capture = &Capture{SamplingRate: 1, Redact: []string{"$..ssn"}, Hash: []string{"$..customer"}}
	g, reg, front := newTestGateway(t, Config{Capture: sink, HashKey: bytes.Repeat([]byte("k"), 32)})
	g.Update(snapshot(endpoint("ep", blue)))
	const n = 20
	for i := range n {
		body := fmt.Sprintf(`{"rows":[{"ssn":"123-45-%04d","customer":"c-%d","x":%d}]}`, i, i, i)
		if res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), body); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	labels := map[string]string{"endpoint": "ep", "deployment": "blue", "result": "written"}
	waitFor(t, "every record written", func() bool { return metricValue(t, reg, "plumbline_capture_records_total", labels) == n })
	mu.Lock()
	out := lines.String()
	mu.Unlock()
	// A customer id is a JSON string "c-N": with its quote, so that a
	// request id (a random GUID) that happens to hold c-1 is not taken
	// for one.
	for _, secret := range []string{"123-45-", `"ssn"`, `"c-`} {
		if strings.Contains(out, secret) {
			t.Errorf("the captured lines contain %q:\n%s", secret, out)
		}
	}
	var rec CaptureRecord
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Deployment != "blue" || rec.Model != "iris:2" || rec.ModelDigest != "sha256:2222" || rec.Status != 200 ||
		len(rec.RequestID) != 36 || rec.Redacted != 4 || !strings.Contains(string(rec.Request), "hmac-sha256:") || !strings.Contains(string(rec.Response), `"score":0.5`) {
		t.Errorf("record: %+v\nrequest %s\nresponse %s", rec, rec.Request, rec.Response)
	}
}

// TestCaptureNeverWaits: a sink that does not return holds no request up:
// records past the queue are dropped and counted.
func TestCaptureNeverWaits(t *testing.T) {
	release := make(chan struct{})
	sink := sinkFunc(func(*CaptureRecord) error { <-release; return nil })
	blue := dep("blue", okBackend(t, `{"ok":true}`))
	blue.Capture = &Capture{SamplingRate: 1}
	g, reg, front := newTestGateway(t, Config{Capture: sink, CaptureQueue: 4})
	g.Update(snapshot(endpoint("ep", blue)))
	const n = 60
	for range n {
		if res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"x":1}`); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	// Every request was answered while the sink held its writers: the
	// queue (4) and the writers (2, if they took one each before the
	// requests ended) hold at most 6 records, the rest were dropped.
	labels := map[string]string{"endpoint": "ep", "deployment": "blue"}
	count := func(result string) float64 {
		return metricValue(t, reg, "plumbline_capture_records_total", with(labels, "result", result))
	}
	waitFor(t, "the drops counted", func() bool { return count("dropped") >= n-4-captureWorkers })
	close(release)
	waitFor(t, "every record written or dropped", func() bool { return count("written")+count("dropped") == n })
	if d := count("dropped"); d < n-4-captureWorkers || d > n-4 {
		t.Errorf("%v records dropped, want %d to %d", d, n-4-captureWorkers, n-4)
	}
}

func TestReplay(t *testing.T) {
	green := backend(t, (&flipper{flipEvery: 2}).ServeHTTP)
	ep := endpoint("ep", dep("green", green))
	ep.Generation = 5
	g, _, _ := newTestGateway(t, Config{})
	g.Update(snapshot(ep))
	var reqs []ReplayRequest
	for i := range 10 {
		reqs = append(reqs, ReplayRequest{RequestID: fmt.Sprintf("req-%d", i), Body: []byte(rows(i, 1)),
			Answer: []byte(fmt.Sprintf(`{"species":[%q]}`, classes[i%3])), Status: 200, Seconds: 0.01})
	}
	sum, err := g.Replay(context.Background(), "ep", "blue", "green", reqs)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 10 || sum.Answered != 10 || sum.Compared != 10 || sum.Agreed != 5 || sum.Epoch != 5 {
		t.Errorf("summary %+v; want 10 sent, answered and compared, 5 agreed, epoch 5", sum)
	}
	var pair *figures.Pair
	for _, m := range g.TakeFigures() {
		if m.Kind == KindReplay && m.Subject == "blue>green" {
			pair = m.Pair
		}
	}
	if pair == nil || pair.Predictions != 10 || pair.Agreed != 5 {
		t.Errorf("replay figures %+v, want 5 of 10 predictions agreed", pair)
	}
	if _, err := g.Replay(context.Background(), "ep", "blue", "nope", reqs); err == nil {
		t.Error("replay to an unknown deployment did not fail")
	}
}

// TestSafetyRace exercises the figures, the hold, mirroring and capture
// under concurrent snapshot swaps (run with -race).
func TestSafetyRace(t *testing.T) {
	a := backend(t, (&flipper{}).ServeHTTP)
	b := backend(t, (&flipper{flipEvery: 3}).ServeHTTP)
	g, _, front := newTestGateway(t, Config{Capture: sinkFunc(func(*CaptureRecord) error { return nil })})
	mk := func(gen int64) *Snapshot {
		blue, green := dep("blue", a), dep("green", b)
		blue.Capture = &Capture{SamplingRate: 0.5, Redact: []string{"$.data"}}
		ep := endpoint("ep", blue, green)
		ep.Generation = gen
		if gen%2 == 0 {
			ep.Traffic = map[string]int{"blue": 50, "green": 50}
			ep.Rollout = &Rollout{Candidate: "green", MinRequests: 5, Fallback: map[string]int{"blue": 100}, MaxErrorRate: 0.5, MaxContractViolationRate: 1}
		} else {
			ep.Mirror = map[string]int{"green": 50}
		}
		return snapshot(ep)
	}
	g.Update(mk(1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for gen := int64(2); ; gen++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			g.Update(mk(gen))
			g.TakeFigures()
			g.TakeDiffs()
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), rows(w*100+i, 2))
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
}

// TestEncodedAnswers: plumber gzips its answer for a client that accepts
// it; the comparison and the capture read the decoded JSON.
func TestEncodedAnswers(t *testing.T) {
	gz := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, `{"species":["setosa"]}`)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, `{"species":["setosa"]}`)
	})
	var mu sync.Mutex
	var recs []*CaptureRecord
	blue := dep("blue", gz)
	blue.Capture = &Capture{SamplingRate: 1}
	ep := endpoint("ep", blue, dep("green", gz))
	ep.Mirror = map[string]int{"green": 100}
	g, reg, front := newTestGateway(t, Config{Capture: sinkFunc(func(r *CaptureRecord) error { mu.Lock(); recs = append(recs, keepRecord(r)); mu.Unlock(); return nil })})
	g.Update(snapshot(ep))
	for range 5 {
		h := bearer(testKey)
		h["Accept-Encoding"] = "gzip"
		if res, _ := call(t, front, "POST", "/endpoints/ep/score", h, `{"x":1}`); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	labels := map[string]string{"endpoint": "ep", "live": "blue", "shadow": "green", "result": "agree"}
	waitFor(t, "5 agreeing pairs", func() bool { return metricValue(t, reg, "plumbline_shadow_pairs_total", labels) == 5 })
	waitFor(t, "5 records", func() bool { mu.Lock(); defer mu.Unlock(); return len(recs) == 5 })
	mu.Lock()
	defer mu.Unlock()
	if string(recs[0].Response) != `{"species":["setosa"]}` {
		t.Errorf("captured response %s (%s), want the decoded JSON", recs[0].Response, recs[0].ResponseOmitted)
	}
}

// TestCaptureKeepsFailures: a model's error is captured as any answer is,
// with the gateway's status (424), the model's (500) and its body.
func TestCaptureKeepsFailures(t *testing.T) {
	failing := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"model failed on row 1"}`)
	})
	recs := make(chan *CaptureRecord, 1)
	blue := dep("blue", failing)
	blue.Capture = &Capture{SamplingRate: 1}
	g, _, front := newTestGateway(t, Config{Capture: sinkFunc(func(r *CaptureRecord) error { recs <- keepRecord(r); return nil })})
	g.Update(snapshot(endpoint("ep", blue)))
	res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"x":1}`)
	if res.StatusCode != http.StatusFailedDependency {
		t.Fatalf("status %d, want 424", res.StatusCode)
	}
	select {
	case rec := <-recs:
		if rec.Status != http.StatusFailedDependency || rec.ModelStatus != http.StatusInternalServerError ||
			string(rec.Request) != `{"x":1}` || !strings.Contains(string(rec.Response), "model failed on row 1") {
			t.Errorf("record of a failure: status %d, model status %d, request %s, response %s", rec.Status, rec.ModelStatus, rec.Request, rec.Response)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failed request was not captured")
	}
}
