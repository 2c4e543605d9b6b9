package rworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var faults = app{codeDir: "testdata/corpus/faults", entry: "plumber.R"}

// seedRoutes are the seed's probe routes (inference_config).
func seedRoutes(cfg Config) Config {
	cfg.LivenessPath, cfg.ReadinessPath = "/live", "/ready"
	return cfg
}

func pidOf(t *testing.T, l *lean) int {
	t.Helper()
	a := do(t, l.url, call{Path: "/pid"})
	if a.Status != http.StatusOK {
		t.Fatalf("/pid: %d %s", a.Status, a.Body)
	}
	var v struct{ PID int }
	if err := json.Unmarshal(a.Body, &v); err != nil {
		t.Fatal(err)
	}
	return v.PID
}

// zombies lists the children of pid that have exited and not been reaped.
func zombies(pid int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestServesTheSeed(t *testing.T) {
	l := startLean(t, app{codeDir: "../../examples/r-iris/src", entry: "plumber.R", modelDir: trainIris(t)}, seedRoutes(Config{}))
	a := do(t, l.url, call{Method: "POST", Path: "/score", Header: map[string]string{"Content-Type": "application/json"},
		Body: readFile(t, "../../examples/r-iris/sample_request.json")})
	if a.Status != http.StatusOK || string(a.Body) != `{"species":["virginica"]}` {
		t.Fatalf("score: %d %s, want 200 {\"species\":[\"virginica\"]}", a.Status, a.Body)
	}
	if v := a.Header.Values("Server-Timing"); len(v) > 0 {
		t.Errorf("Server-Timing %q without --timing: want none", v)
	}
	st := l.status(t)
	if st.Router != "compiled" || st.Workers != 1 || st.SessionRSS <= 0 {
		t.Errorf("status %+v: want the compiled router, 1 worker and the session's RSS", st)
	}
}

// TestProbesWhileBusy: with its only worker busy in a long request, the
// instance still answers liveness and readiness at once, from the workers'
// state, and the request is still running.
func TestProbesWhileBusy(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 1, RequestTimeout: 4 * time.Second}))
	ctx, cancel := context.WithCancel(context.Background())
	slow := make(chan answer, 1)
	go func() {
		a, _ := doErr(ctx, l.url, call{Path: "/slow?s=60"})
		slow <- a
	}()
	eventually(t, 30*time.Second, "the worker turns busy", func() bool { return l.status(t).Busy == 1 })
	for _, path := range []string{"/live", "/ready"} {
		a := do(t, l.url, call{Path: path})
		var st probeState
		if err := json.Unmarshal(a.Body, &st); err != nil {
			t.Fatalf("%s: %v: %s", path, err, a.Body)
		}
		if a.Status != http.StatusOK || st.Busy != 1 || st.Idle != 0 {
			t.Errorf("%s while the worker is busy: %d %s, want 200 with busy 1, idle 0", path, a.Status, a.Body)
		}
	}
	select {
	case a := <-slow:
		t.Fatalf("the slow request ended (%d) before the probes were answered", a.Status)
	default:
	}
	// The client gives up: R cannot be interrupted, so the worker goes on
	// until the request timeout, is then killed and replaced, and the next
	// request is served.
	cancel()
	<-slow
	if st := l.status(t); st.Busy != 1 || st.Replaced != 0 {
		t.Errorf("right after the client left: %+v, want the worker still busy", st)
	}
	eventually(t, 30*time.Second, "the runaway request's worker is replaced", func() bool {
		st := l.status(t)
		return st.Replaced == 1 && st.Workers == 1 && st.Idle == 1
	})
	pidOf(t, l)
}

// TestClientGoneKeepsAFinishingWorker: a client that hangs up does not cost
// a worker that finishes within the request timeout.
func TestClientGoneKeepsAFinishingWorker(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 1, RequestTimeout: 20 * time.Second}))
	before := pidOf(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := doErr(ctx, l.url, call{Path: "/slow?s=1"}); err == nil {
		t.Fatal("the request outlived its client's deadline")
	}
	if after := pidOf(t, l); after != before {
		t.Errorf("the worker was replaced (%d → %d); want the same worker once it finished", before, after)
	}
	if st := l.status(t); st.Replaced != 0 {
		t.Errorf("replaced %d workers, want 0", st.Replaced)
	}
}

// TestReadinessWaitsForTheUserRoute: the deployment's own readiness route
// decides the first readiness.
func TestReadinessWaitsForTheUserRoute(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ready")
	a := faults
	a.extraEnv = []string{"READY_FILE=" + flag}
	l := launchLean(t, a, seedRoutes(Config{}))
	waitReady(t, l.url+"/live", l.stopped, func() error { return l.err }, l.log)
	eventually(t, 30*time.Second, "a worker is up", func() bool { return l.status(t).Workers == 1 })
	r := do(t, l.url, call{Path: "/ready"})
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"starting"`) {
		t.Fatalf("/ready before the user's route passes: %d %s, want 503 starting", r.Status, r.Body)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, l.url+"/ready", l.stopped, func() error { return l.err }, l.log)
}

// TestKilledWorkerCostsOneRequest: a worker killed while serving costs
// that request a 502; the others are served, and it is forked again.
func TestKilledWorkerCostsOneRequest(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 2, RequestTimeout: time.Minute}))
	slow := make(chan answer, 1)
	go func() { slow <- do(t, l.url, call{Path: "/slow?s=60"}) }()
	var victim int
	eventually(t, 30*time.Second, "a worker turns busy", func() bool {
		for _, w := range l.status(t).Detail {
			if w.Busy {
				victim = w.PID
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if a := <-slow; a.Status != http.StatusBadGateway {
		t.Errorf("the killed worker's request: %d %s, want 502", a.Status, a.Body)
	}
	for i := range 20 {
		if pid := pidOf(t, l); pid == victim {
			t.Fatalf("request %d served by the killed worker %d", i, pid)
		}
	}
	eventually(t, 30*time.Second, "the pool is back to 2 workers", func() bool {
		st := l.status(t)
		return st.Workers == 2 && st.Replaced == 1
	})
	zygote := l.s.sess.cmd.Process.Pid
	eventually(t, 10*time.Second, "the killed worker is reaped", func() bool { return len(zombies(zygote)) == 0 })
}

// TestTimeoutKillsARunawayWorker: a request past its timeout gets a 504,
// and its worker, stuck in an R loop, is killed and forked again.
func TestTimeoutKillsARunawayWorker(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 1, RequestTimeout: time.Second}))
	before := pidOf(t, l)
	a := do(t, l.url, call{Path: "/spin"})
	if a.Status != http.StatusGatewayTimeout || !strings.Contains(string(a.Body), "request timeout") {
		t.Fatalf("/spin: %d %s, want 504 naming the request timeout", a.Status, a.Body)
	}
	if after := pidOf(t, l); after == before {
		t.Errorf("the runaway worker %d still serves", before)
	}
	// Gone, and reaped by the loaded session (a zombie would still be
	// signalable).
	eventually(t, 10*time.Second, "the runaway worker is gone", func() bool {
		return errors.Is(syscall.Kill(before, 0), syscall.ESRCH)
	})
	if st := l.status(t); st.Replaced != 1 {
		t.Errorf("replaced %d workers, want 1", st.Replaced)
	}
}

func TestRecyclesAfterMaxRequests(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 1, MaxRequests: 3}))
	// The start-up probes are requests too: /live and /ready.
	pids := map[int]int{}
	for range 10 {
		pids[pidOf(t, l)]++
	}
	for pid, n := range pids {
		if n > 3 {
			t.Errorf("worker %d served %d requests, more than 3", pid, n)
		}
	}
	if len(pids) < 4 {
		t.Errorf("10 requests with at most 3 per worker went to %d workers", len(pids))
	}
	if st := l.status(t); st.Recycled < 3 || st.Replaced != 0 {
		t.Errorf("status %+v: want at least 3 recycled, none replaced", st)
	}
}

func TestRecyclesPastTheMemoryBound(t *testing.T) {
	// Filling 200 MB in R took more than the default 5 s request timeout
	// on a loaded machine (stress -c 2 at load 24): the timeout is not what
	// this test is about, so it is generous.
	l := startLean(t, faults, seedRoutes(Config{Workers: 1, MaxMemoryBytes: 450 << 20, RequestTimeout: 2 * time.Minute}))
	chunks := func() int {
		a := do(t, l.url, call{Path: "/grow"})
		var v struct{ Chunks int }
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil {
			t.Fatalf("/grow: %d %s", a.Status, a.Body)
		}
		return v.Chunks
	}
	// Each /grow keeps 200 MB more: the second passes 450 MB, so the
	// worker that answered it is replaced and the third starts over.
	got := []int{chunks(), chunks(), chunks()}
	if got[0] != 1 || got[1] != 2 || got[2] != 1 {
		t.Errorf("chunks held by the worker after each /grow: %v, want [1 2 1]", got)
	}
	if st := l.status(t); st.Recycled != 1 {
		t.Errorf("recycled %d workers, want 1", st.Recycled)
	}
}

// TestResizeForksFromTheLoadedSession: more workers come from forks of the
// same loaded session, not new R start-ups.
func TestResizeForksFromTheLoadedSession(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 1}))
	session := l.s.sess.cmd.Process.Pid
	var res struct {
		TookMS float64    `json:"took_ms"`
		State  probeState `json:"state"`
	}
	if err := json.Unmarshal(l.control(t, http.MethodPut, "/workers?n=3"), &res); err != nil {
		t.Fatal(err)
	}
	if res.State.Workers != 3 || res.State.Forks != 3 || res.TookMS <= 0 {
		t.Fatalf("after resizing to 3: %+v, want 3 workers from 3 forks", res)
	}
	for _, w := range res.State.Detail {
		ppid := parentOf(w.PID)
		if ppid != session {
			t.Errorf("worker %d's parent is %d, want the loaded session %d", w.PID, ppid, session)
		}
	}
	if err := json.Unmarshal(l.control(t, http.MethodPut, "/workers?n=1"), &res); err != nil {
		t.Fatal(err)
	}
	if res.State.Workers != 1 {
		t.Errorf("after resizing to 1: %d workers", res.State.Workers)
	}
	pidOf(t, l)

	// Parked (the autoscaler's scale to zero): no worker, the session
	// alive and not ready; a resize forks from it again.
	if err := json.Unmarshal(l.control(t, http.MethodPut, "/workers?n=0"), &res); err != nil {
		t.Fatal(err)
	}
	if res.State.Workers != 0 {
		t.Errorf("after resizing to 0: %d workers", res.State.Workers)
	}
	if r := do(t, l.url, call{Path: "/live"}); r.Status != http.StatusOK {
		t.Errorf("/live while parked: %d %s, want 200", r.Status, r.Body)
	}
	if r := do(t, l.url, call{Path: "/ready"}); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "no worker is up") {
		t.Errorf("/ready while parked: %d %s, want 503 with no worker", r.Status, r.Body)
	}
	if err := json.Unmarshal(l.control(t, http.MethodPut, "/workers?n=1"), &res); err != nil {
		t.Fatal(err)
	}
	if r := do(t, l.url, call{Path: "/ready"}); res.State.Workers != 1 || r.Status != http.StatusOK {
		t.Errorf("unparked: %d workers, /ready %d %s; want 1 and 200", res.State.Workers, r.Status, r.Body)
	}
	t.Logf("unparking forked a worker in %.1f ms", res.TookMS)
	pidOf(t, l)
}

func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// TestExitHookIsUnsupported: the loaded session reports what it cannot
// serve, before the supervisor listens.
func TestExitHookIsUnsupported(t *testing.T) {
	l := launchLean(t, app{codeDir: "testdata/corpus/exithook", entry: "plumber.R"}, Config{})
	select {
	case <-l.stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
	}
	var u *UnsupportedError
	if !errors.As(l.err, &u) || !strings.Contains(u.Reason, "exit hook") {
		t.Fatalf("Run: %v, want an UnsupportedError naming the exit hook", l.err)
	}
}

func TestLoadErrorStops(t *testing.T) {
	l := launchLean(t, app{codeDir: "testdata/corpus/broken", entry: "plumber.R"}, Config{})
	select {
	case <-l.stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
	}
	if l.err == nil || !strings.Contains(l.err.Error(), "exited with code 1 while loading plumber.R") {
		t.Fatalf("Run: %v, want the session's exit while loading", l.err)
	}
	if !strings.Contains(l.log.String(), "unexpected '*'") {
		t.Errorf("the log lacks R's own error text:\n%s", l.log)
	}
}

// TestQuitEndsOnlyTheWorker: quit() in a handler ends that worker (its
// request gets a 502), not the loaded session's temporary folder, which
// the other workers share.
func TestQuitEndsOnlyTheWorker(t *testing.T) {
	l := startLean(t, faults, seedRoutes(Config{Workers: 2}))
	if a := do(t, l.url, call{Path: "/quit"}); a.Status != http.StatusBadGateway {
		t.Errorf("/quit: %d %s, want 502", a.Status, a.Body)
	}
	for range 4 {
		if a := do(t, l.url, call{Path: "/tempfile"}); a.Status != http.StatusOK || string(a.Body) != `{"ok":true}` {
			t.Fatalf("/tempfile after a worker quit: %d %s", a.Status, a.Body)
		}
	}
	eventually(t, 30*time.Second, "the pool is back to 2 workers", func() bool {
		st := l.status(t)
		return st.Workers == 2 && st.Replaced == 1
	})
	if !strings.Contains(l.log.String(), "quit() called while serving a request") {
		t.Errorf("the log does not say the worker quit:\n%s", l.log)
	}
}

// TestLongDirControlSocket: a run folder too deep for a unix socket path
// puts the control socket in a private temporary folder, and says where.
func TestLongDirControlSocket(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:1", Dir: filepath.Join(t.TempDir(), strings.Repeat("d", 120))}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := s.serveControl()
	if err != nil {
		t.Fatal(err)
	}
	sock := ControlSocket(s.cfg.Dir)
	if len(sock) > maxSocketPath || !strings.HasSuffix(sock, "control.sock") {
		t.Fatalf("control socket at %q", sock)
	}
	fi, err := os.Stat(filepath.Dir(sock))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("its folder: %v, %v; want mode 0700", fi.Mode(), err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("the temporary folder is left after Close: %v", err)
	}
}

// TestTimingStages: with --timing every answer says where its time went,
// stage by stage, in the supervisor and in R, and the stages add up to no
// more than the time the client waited; with --rprof each worker leaves
// Rprof samples of plumber's routing and the handler.
func TestTimingStages(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "rprof.out")
	l := startLean(t, app{codeDir: "../../examples/r-iris/src", entry: "plumber.R", modelDir: trainIris(t)},
		seedRoutes(Config{Timing: true, RprofFile: prof}))
	body := readFile(t, "../../examples/r-iris/sample_request.json")
	stages := func(a answer) map[string]float64 {
		t.Helper()
		v := a.Header.Get("Server-Timing")
		got := map[string]float64{}
		for _, m := range strings.Split(v, ", ") {
			name, dur, ok := strings.Cut(m, ";dur=")
			f, err := strconv.ParseFloat(dur, 64)
			if !ok || err != nil || f < 0 {
				t.Fatalf("Server-Timing %q: metric %q is not name;dur=<ms ≥ 0>", v, m)
			}
			got[name] = f
		}
		if len(got) != len(Stages) {
			t.Fatalf("Server-Timing %q: want the %d stages %v", v, len(Stages), Stages)
		}
		for _, st := range Stages {
			if _, ok := got[st.Name]; !ok {
				t.Fatalf("Server-Timing %q has no %s", v, st.Name)
			}
		}
		return got
	}
	for i := 0; i < 30; i++ {
		t0 := time.Now()
		a := do(t, l.url, call{Method: "POST", Path: "/score", Header: map[string]string{"Content-Type": "application/json"}, Body: body})
		waited := float64(time.Since(t0).Microseconds()) / 1000
		if a.Status != http.StatusOK || string(a.Body) != `{"species":["virginica"]}` {
			t.Fatalf("score: %d %s", a.Status, a.Body)
		}
		got := stages(a)
		sum := 0.0
		for _, d := range got {
			sum += d
		}
		// Each duration is rounded to a microsecond.
		if sum > waited+0.05 {
			t.Errorf("the stages add up to %.3f ms, more than the %.3f ms the client waited: %v", sum, waited, got)
		}
		if got["r-handler"] <= 0 || got["r-parse"] <= 0 || got["r-serialize"] <= 0 {
			t.Errorf("the handler, parsing and serializing took no time: %v", got)
		}
	}
	// A request that reaches no endpoint: its routing is all in r-route.
	a := do(t, l.url, call{Path: "/nowhere"})
	if a.Status != http.StatusNotFound {
		t.Fatalf("/nowhere: %d, want 404", a.Status)
	}
	if got := stages(a); got["r-handler"] != 0 || got["r-route"] <= 0 {
		t.Errorf("404: %v, want routing time and no handler time", got)
	}
	if strings.Contains(fmt.Sprint(a.Header), "plumbline-timing") {
		t.Errorf("the worker's timing line reached the client: %v", a.Header)
	}

	l.cancel()
	<-l.stopped
	files, _ := filepath.Glob(prof + ".w*")
	if len(files) == 0 {
		t.Fatalf("no Rprof file %s.<worker>", prof)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "sample.interval=500") || !strings.Contains(string(b), `"call_router"`) {
		t.Errorf("%s is not an Rprof file with the router's samples: %.300s", files[0], b)
	}
}

// TestHeaderLineBreaks: a header value the handler set with line breaks
// reaches the client with each break as a space, never as a new header.
func TestHeaderLineBreaks(t *testing.T) {
	requireR(t, "readr")
	l := startLean(t, app{codeDir: "testdata/corpus/features", entry: "plumber.R"}, Config{})
	a := do(t, l.url, call{Path: "/linebreaks"})
	if a.Status != http.StatusOK || a.Header.Get("X-Lines") != "a b  c" {
		t.Errorf("/linebreaks: %d, X-Lines %q, want 200 and \"a b  c\"", a.Status, a.Header.Get("X-Lines"))
	}
}
