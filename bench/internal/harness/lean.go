package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/nginx"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/bench/internal/serve"
	"github.com/plumbline/plumbline/internal/rworker"
)

// Scenario 9 (lean): plumbline's lean R runtime beside plumber's own
// server, on the iris example and on a slower model (a 500-tree ranger), at
// 1 and 2 instances or workers; then what only the lean runtime does: fork
// time, memory shared between workers, and a worker killed under load.

const (
	rangerExample = "bench/testdata/r-ranger"
	rangerModel   = "ranger-forest"
)

// Lean scenario variant names.
const (
	lClose      = rClose
	lNginx      = rNginx
	lPlumber    = "plumbline → plumber's own server"
	lLean       = "plumbline → lean R runtime"
	lLeanDirect = "lean R runtime direct (no gateway)"
)

// LeanModel is one model's side-by-side runs.
type LeanModel struct {
	Name, Desc string
	Limit      rscript.Limit
	LimitErr   string
	// Runs[n][variant]: n instances (plumber) or workers in one instance
	// (lean), n concurrent clients; one entry per repeat.
	Runs map[int]map[string][]load.Stats
	// LeanBoot is a lean instance's start → ready (from the server's events).
	LeanBoot time.Duration
	// Stages is where a lean request's time goes (--timing, --rprof).
	Stages *LeanStages
}

// LeanResult is scenario 7.
type LeanResult struct {
	Variants []string
	Desc     map[string]string
	Models   []*LeanModel
	// Forks are the times of PUT /workers?n=k+1 on a serving instance: one
	// worker forked from the loaded session, up to its first words.
	Forks    []time.Duration
	ForksErr string
	// PSS holds the memory cases: the iris instance, and a plumber.R with
	// a 320 MB model.
	PSS    []PSSCase
	PSSErr string
	Fault  *LeanFault
}

// PSSCase sums the proportional set size of a lean instance's R processes
// (the loaded session and its workers) with 1 and with 4 workers, each after
// serving requests; Procs1 and Procs4 detail them.
type PSSCase struct {
	Name           string
	PSS1, PSS4     uint64
	Procs1, Procs4 []NamedPSS
}

// NamedPSS is one process's PSS and RSS.
type NamedPSS struct {
	Name     string
	PSS, RSS uint64
}

// LeanFault is a worker killed while it served a request under constant
// load.
type LeanFault struct {
	Rate     int
	Duration time.Duration
	Killed   bool // a busy worker was found and killed
	Stats    load.Stats
	// Baseline is the same load without the kill, run just before.
	Baseline load.Stats
	Err      string
}

// leanModel is one model's files.
type leanModel struct {
	name, desc string
	example    string // folder with deployment.yml and src/plumber.R
	modelDir   string // AZUREML_MODEL_DIR (…/models/<file> inside)
	registered string // model name in the registry
	body       []byte
}

func (e *env) leanScenario(ctx context.Context) error {
	c := e.cfg
	ie, err := e.iris(ctx)
	if err != nil {
		return err
	}
	models := []leanModel{
		{"iris", "examples/r-iris: the seed's plumber.R, a 50-tree randomForest crate", ie.Example, ie.ModelDir, irisModel, ie.Body},
	}
	// The smoke run proves the harness on one model.
	if !c.Smoke {
		rg, err := e.ranger(ctx)
		if err != nil {
			return err
		}
		models = append(models, rg)
	}
	res := &LeanResult{
		Variants: []string{lClose, lNginx, lPlumber, lLean, lLeanDirect},
		Desc: map[string]string{
			lClose:      "Go client, Connection: close, to plumber processes the harness started with plumbline's launcher (n processes)",
			lNginx:      "keep-alive client → nginx, default proxy_pass (a new upstream connection per request) → those plumber processes",
			lPlumber:    "keep-alive client → plumbline serve over HTTPS (key auth) → n instances on plumber's own server (`plumbline.r_runtime: plumber`)",
			lLean:       "keep-alive client → plumbline serve over HTTPS (key auth) → one instance on the lean R runtime with n workers (`max_concurrent_requests_per_instance: n`)",
			lLeanDirect: "keep-alive client → that lean instance's own address, plain HTTP: the lean runtime without the gateway (a diagnostic)",
		},
	}
	e.res.Lean = res
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	for _, m := range models {
		lm, err := e.leanModel(ctx, s, m)
		res.Models = append(res.Models, lm)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if lm.Stages, err = e.leanStages(ctx, m); err != nil {
			return fmt.Errorf("%s: where a request's time goes: %w", m.name, err)
		}
	}

	// What only the lean runtime does, on the iris example's lean
	// instance with one worker.
	in, err := leanInstance(s, leanEndpoint("iris", 1))
	if err != nil {
		return err
	}
	sock := rworker.ControlSocket(in.RWorkerDir)
	forks := 5
	if c.Smoke {
		forks = 2
	}
	for k := 2; k <= 1+forks; k++ {
		took, err := resize(ctx, sock, k)
		if err != nil {
			res.ForksErr = err.Error()
			return err
		}
		res.Forks = append(res.Forks, took)
	}
	e.logf("lean: +1 worker ready in %s (each of %d forks)", joinDur(res.Forks), len(res.Forks))
	pc, err := e.leanMemory(ctx, "iris (examples/r-iris, a 6 kB crate)", in.Port, sock, models[0].body)
	if err != nil {
		res.PSSErr = err.Error()
		return err
	}
	res.PSS = append(res.PSS, pc)
	if _, err := resize(ctx, sock, 1); err != nil {
		return err
	}
	if err := e.leanFault(ctx, s, res, models[0]); err != nil {
		return err
	}
	pc, err = e.bigModelMemory(ctx)
	if err != nil {
		res.PSSErr = err.Error()
		return err
	}
	res.PSS = append(res.PSS, pc)
	return nil
}

// bigModelMemory runs the lean runtime's supervisor (`plumbline rworker`, as
// the process driver runs it) on bench/testdata/r-bigmodel, whose plumber.R
// holds 320 MB of model data, and measures its memory with 1 and 4 workers.
func (e *env) bigModelMemory(ctx context.Context) (PSSCase, error) {
	port, err := proc.FreePort()
	if err != nil {
		return PSSCase{}, err
	}
	dir := filepath.Join(e.tmp, "bigmodel-rworker")
	code := filepath.Join(e.cfg.RepoRoot, "bench", "testdata", "r-bigmodel")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(e.cfg.Plumbline, rworker.Command, "--listen", addr, "--dir", dir, "--rscript", e.cfg.Rscript,
		"--liveness-path", rworker.OwnLivenessPath, "--readiness-path", rworker.OwnReadinessPath)
	cmd.Dir = code
	cmd.Env = append(os.Environ(), "AML_APP_ROOT="+code, "AZUREML_ENTRY_SCRIPT=plumber.R")
	p, err := e.g.Start("rworker-bigmodel", cmd, proc.Options{Grace: 3 * time.Second})
	if err != nil {
		return PSSCase{}, err
	}
	defer p.Stop()
	if err := waitReady(ctx, p, "http://"+addr+rworker.OwnReadinessPath, 2*time.Minute); err != nil {
		return PSSCase{}, fmt.Errorf("the big-model supervisor: %w", err)
	}
	return e.leanMemory(ctx, "a plumber.R holding 320 MB of model data (bench/testdata/r-bigmodel)", port, rworker.ControlSocket(dir), []byte(`{"x": 1}`))
}

// ranger trains the slower model into the temporary folder and registers it.
func (e *env) ranger(ctx context.Context) (leanModel, error) {
	m := leanModel{name: "ranger", desc: rangerExample + ": the same plumber.R shape and request, a 500-tree ranger forest",
		example: filepath.Join(e.cfg.RepoRoot, rangerExample), modelDir: filepath.Join(e.tmp, "ranger"), registered: rangerModel}
	body, err := os.ReadFile(filepath.Join(e.cfg.RepoRoot, irisExample, "sample_request.json"))
	if err != nil {
		return m, err
	}
	m.body = body
	models := filepath.Join(m.modelDir, "models")
	if _, err := os.Stat(filepath.Join(models, "model.rds")); err == nil {
		return m, nil
	}
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, e.cfg.Rscript, filepath.Join(m.example, "train.R"), models).CombinedOutput()
	if err != nil {
		return m, fmt.Errorf("train the ranger model (Debian: apt-get install r-cran-ranger): %w\n%s", err, out)
	}
	e.logf("trained the ranger model in %.1fs", time.Since(t0).Seconds())
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return m, err
	}
	_, err = s.CLI(ctx, "model", "create", "--name", rangerModel, "--version", "1", "--path", models, "-o", "json")
	return m, err
}

func leanEndpoint(model string, n int) string    { return fmt.Sprintf("lean%s%d", model, n) }
func plumberEndpoint(model string, n int) string { return fmt.Sprintf("plr%s%d", model, n) }

// leanModel runs one model's variants.
func (e *env) leanModel(ctx context.Context, s *serve.Server, m leanModel) (*LeanModel, error) {
	c := e.cfg
	lm := &LeanModel{Name: m.name, Desc: m.desc, Runs: map[int]map[string][]load.Stats{1: {}, 2: {}}}
	lim, err := rscript.ComputeLimit(ctx, c.Rscript, filepath.Join(m.example, "src", "plumber.R"), m.modelDir, "/score", string(m.body), c.RRun)
	if err != nil {
		lm.LimitErr = err.Error()
		return lm, err
	}
	lm.Limit = lim
	e.logf("lean %s: in-R compute limit %.0f/s (p50 %s)", m.name, lim.RPS, fmtDur(lim.P50))

	var plumbers []*rscript.Plumber
	for i := 1; i <= 2; i++ {
		p, err := rscript.StartPlumber(ctx, e.g, fmt.Sprintf("plumber-%s-%d", m.name, i), c.Rscript, filepath.Join(m.example, "src"), "plumber.R", m.modelDir, "/ready")
		if err != nil {
			return lm, err
		}
		plumbers = append(plumbers, p)
	}
	ng, err := nginx.Start(ctx, e.g, c.Nginx, filepath.Join(e.tmp, "nginx-lean-"+m.name), []*nginx.Site{
		{Name: "one", Upstreams: []string{plumbers[0].Addr}},
		{Name: "two", Upstreams: []string{plumbers[0].Addr, plumbers[1].Addr}},
	})
	if err != nil {
		return lm, err
	}
	deployment := filepath.Join(m.example, "deployment.yml")
	create := func(endpoint, runtime string, instances, concurrent int) (string, error) {
		key, err := e.createEndpoint(ctx, s, endpoint)
		if err != nil {
			return "", err
		}
		_, err = s.CLI(ctx, "online-deployment", "create", "-f", deployment, "--name", "blue", "--endpoint-name", endpoint,
			"--set", "model=azureml:"+m.registered+"@latest",
			"--set", "instance_count="+strconv.Itoa(instances),
			"--set", "request_settings.max_concurrent_requests_per_instance="+strconv.Itoa(concurrent),
			"--set", "plumbline.r_runtime="+runtime, "--all-traffic", "-o", "json")
		return key, err
	}
	json := map[string][]string{"Content-Type": {"application/json"}}
	type variant struct {
		targets []load.Target
		opts    load.ClientOptions
	}
	variants := map[int]map[string]variant{}
	for _, n := range []int{1, 2} {
		t0 := time.Now()
		leanKey, err := create(leanEndpoint(m.name, n), "lean", 1, n)
		if err != nil {
			return lm, err
		}
		if n == 1 {
			lm.LeanBoot = time.Since(t0)
		}
		plKey, err := create(plumberEndpoint(m.name, n), "plumber", n, 1)
		if err != nil {
			return lm, err
		}
		in, err := leanInstance(s, leanEndpoint(m.name, n))
		if err != nil {
			return lm, err
		}
		direct := make([]load.Target, n)
		for i := range n {
			direct[i] = load.Target{Method: "POST", URL: "http://" + plumbers[i].Addr + "/score", Body: m.body, Header: json}
		}
		site := map[int]string{1: "one", 2: "two"}[n]
		variants[n] = map[string]variant{
			lClose:      {direct, load.ClientOptions{KeepAlive: false}},
			lNginx:      {[]load.Target{{Method: "POST", URL: ng.URL(site) + "/score", Body: m.body, Header: json}}, load.ClientOptions{KeepAlive: true}},
			lPlumber:    {[]load.Target{scoreTarget(s, plumberEndpoint(m.name, n), plKey, m.body)}, s.ClientOptions(true)},
			lLean:       {[]load.Target{scoreTarget(s, leanEndpoint(m.name, n), leanKey, m.body)}, s.ClientOptions(true)},
			lLeanDirect: {[]load.Target{{Method: "POST", URL: fmt.Sprintf("http://127.0.0.1:%d/score", in.Port), Body: m.body, Header: json}}, load.ClientOptions{KeepAlive: true}},
		}
	}
	type job struct {
		n int
		v string
	}
	var jobs []job
	for _, n := range []int{1, 2} {
		for _, v := range e.res.Lean.Variants {
			jobs = append(jobs, job{n, v})
			// Warm up (R compiles on first use; connections open) until a
			// request succeeds: on a busy machine one may take longer
			// than a short run.
			vv := variants[n][v]
			if err := warmUp(ctx, fmt.Sprintf("%s with n=%d", v, n), load.ClosedLoop{Targets: vv.targets, Conns: n, Client: vv.opts}, 500*time.Millisecond); err != nil {
				return lm, err
			}
		}
	}
	for rep := range c.Repeats {
		order := make([]job, len(jobs))
		copy(order, jobs)
		e.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, j := range order {
			if ctx.Err() != nil {
				return lm, ctx.Err()
			}
			vv := variants[j.n][j.v]
			st := load.ClosedLoop{Targets: vv.targets, Conns: j.n, Duration: c.RRun, Client: vv.opts}.Run(ctx)
			lm.Runs[j.n][j.v] = append(lm.Runs[j.n][j.v], st)
			e.logf("lean %s rep %d, n=%d, %-40s %7.1f req/s p50 %-9s p99 %-9s %s", m.name, rep+1, j.n, j.v, st.RPS,
				st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond), st.CodesString())
		}
	}
	// The harness's plumbers are not needed any more: free their CPU.
	for _, p := range plumbers {
		p.Proc.Stop()
	}
	ng.Proc.Stop()
	return lm, nil
}

// leanInstance is the one instance of an endpoint's deployment.
func leanInstance(s *serve.Server, endpoint string) (serve.Instance, error) {
	ins := s.Instances(endpoint, "")
	if len(ins) != 1 {
		return serve.Instance{}, fmt.Errorf("endpoint %s: %d instances, want 1", endpoint, len(ins))
	}
	return ins[0], nil
}

// controlClient talks to a supervisor's control socket.
func controlClient(sock string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// resize asks the supervisor for n workers and returns how long it took
// until they were ready.
func resize(ctx context.Context, sock string, n int) (time.Duration, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://rworker/workers?n="+strconv.Itoa(n), nil)
	res, err := controlClient(sock).Do(req)
	if err != nil {
		return 0, fmt.Errorf("resize to %d workers: %w", n, err)
	}
	defer res.Body.Close()
	var out struct {
		TookMS float64 `json:"took_ms"`
		Error  string  `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("resize to %d workers: %d %s %v", n, res.StatusCode, out.Error, err)
	}
	return time.Duration(out.TookMS * float64(time.Millisecond)), nil
}

// workerState is the part of the supervisor's /status the harness reads.
type workerState struct {
	PID  int  `json:"pid"`
	Busy bool `json:"busy"`
}

func status(ctx context.Context, sock string) ([]workerState, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://rworker/status", nil)
	res, err := controlClient(sock).Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var st struct {
		Detail []workerState `json:"detail"`
	}
	b, _ := io.ReadAll(res.Body)
	return st.Detail, json.Unmarshal(b, &st)
}

// leanMemory sums the PSS of a lean instance's R processes with 1 and with
// 4 workers, each after every worker served requests.
func (e *env) leanMemory(ctx context.Context, name string, port int, sock string, body []byte) (PSSCase, error) {
	pc := PSSCase{Name: name}
	target := []load.Target{{Method: "POST", URL: fmt.Sprintf("http://127.0.0.1:%d/score", port), Body: body,
		Header: map[string][]string{"Content-Type": {"application/json"}}}}
	measure := func(n int) (uint64, []NamedPSS, error) {
		if _, err := resize(ctx, sock, n); err != nil {
			return 0, nil, err
		}
		load.ClosedLoop{Targets: target, Conns: n, Duration: e.cfg.RRun, Client: load.ClientOptions{KeepAlive: true}}.Run(ctx)
		// The workers the supervisor counts (a retired one may still be
		// exiting) and their parent, the loaded session.
		ws, err := status(ctx, sock)
		if err != nil {
			return 0, nil, err
		}
		if len(ws) != n {
			return 0, nil, fmt.Errorf("the supervisor reports %d workers, want %d", len(ws), n)
		}
		var total uint64
		var procs []NamedPSS
		add := func(name string, pid int) error {
			pss, err := proc.ReadPSS(pid)
			if err != nil {
				return err
			}
			m, _ := proc.ReadMem(pid)
			total += pss
			procs = append(procs, NamedPSS{Name: name, PSS: pss, RSS: m.RSS})
			return nil
		}
		st, err := proc.ReadStat(ws[0].PID)
		if err != nil {
			return 0, nil, err
		}
		if err := add("loaded R session", st.PPID); err != nil {
			return 0, nil, err
		}
		for i, w := range ws {
			if err := add(fmt.Sprintf("worker %d", i+1), w.PID); err != nil {
				return 0, nil, err
			}
		}
		return total, procs, nil
	}
	var err error
	if pc.PSS1, pc.Procs1, err = measure(1); err != nil {
		return pc, err
	}
	if pc.PSS4, pc.Procs4, err = measure(4); err != nil {
		return pc, err
	}
	e.logf("lean: %s: PSS of the R processes with 1 worker %d MiB, with 4 workers %d MiB", name, pc.PSS1>>20, pc.PSS4>>20)
	return pc, nil
}

// leanFault sends constant load to a lean instance with 2 workers, once as
// is and once killing, a third into the run, the worker serving a request.
func (e *env) leanFault(ctx context.Context, s *serve.Server, res *LeanResult, m leanModel) error {
	// Two workers behind 8 gateway slots (16 requests admitted): a busy
	// machine's latency spikes queue at the supervisor instead of turning
	// into 429s, so what fails is what the kill costs.
	const endpoint = "leanfault"
	key, err := e.createEndpoint(ctx, s, endpoint)
	if err != nil {
		return err
	}
	if _, err := s.CLI(ctx, "online-deployment", "create", "-f", filepath.Join(m.example, "deployment.yml"), "--name", "blue", "--endpoint-name", endpoint,
		"--set", "model=azureml:"+m.registered+"@latest", "--set", "plumbline.r_runtime=lean", "--set", "plumbline.workers=2",
		"--set", "request_settings.max_concurrent_requests_per_instance=8", "--all-traffic", "-o", "json"); err != nil {
		return err
	}
	in, err := leanInstance(s, endpoint)
	if err != nil {
		return err
	}
	sock := rworker.ControlSocket(in.RWorkerDir)
	f := &LeanFault{Rate: 50, Duration: 3 * e.cfg.RRun}
	res.Fault = f
	target := []load.Target{scoreTarget(s, endpoint, key, m.body)}
	// The same load without a kill first: what fails anyway on this
	// machine (the gateway's 429s when it is too busy) is not the kill's.
	f.Baseline = load.ConstantRate{Targets: target, Rate: f.Rate, Duration: f.Duration, Client: s.ClientOptions(true)}.Run(ctx)
	var killed atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.Duration / 3):
		}
		deadline := time.Now().Add(f.Duration / 2)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			ws, err := status(ctx, sock)
			if err == nil {
				for _, w := range ws {
					if w.Busy && syscall.Kill(w.PID, syscall.SIGKILL) == nil {
						killed.Store(true)
						return
					}
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	f.Stats = load.ConstantRate{Targets: target, Rate: f.Rate, Duration: f.Duration, Client: s.ClientOptions(true)}.Run(ctx)
	f.Killed = killed.Load()
	e.logf("lean: a worker killed under %d req/s: killed=%v, %s", f.Rate, f.Killed, f.Stats.CodesString())
	if !f.Killed {
		f.Err = "no worker was seen busy to kill"
		return errors.New("lean fault: " + f.Err)
	}
	return nil
}

// Targets of issue 13.
const (
	targetLeanVsClose = 2.0                    // lean req/s at 1 worker, c=1, over plumber direct with new connections
	targetLeanP50     = 1.25                   // lean p50 through the gateway over the in-R compute p50
	targetFork        = 100 * time.Millisecond // +1 worker ready
	targetPSS4        = 2.0                    // 4 workers' PSS over 1 worker's
)

func leanVerdicts(r *Results, skip func(string, string)) []Verdict {
	lr := r.Lean
	names := []string{
		fmt.Sprintf("lean runtime ≥ %.1f× plumber direct (new connection per request), requests/s at 1 worker, c=1", targetLeanVsClose),
		fmt.Sprintf("lean runtime p50 through the gateway over HTTPS ≤ %.2f× the in-R compute p50", targetLeanP50),
		fmt.Sprintf("+1 worker ready ≤ %s", fmtDur(targetFork)),
		fmt.Sprintf("4 workers' total PSS ≤ %.0f× one worker's", targetPSS4),
		"0 failed requests other than the one a killed worker was serving",
	}
	if lr == nil || len(lr.Models) == 0 {
		for _, n := range names {
			skip(n, "scenario 9 not run")
		}
		return nil
	}
	var out []Verdict
	for _, m := range lr.Models {
		runs := m.Runs[1]
		if len(runs[lLean]) == 0 || len(runs[lClose]) == 0 {
			skip(names[0]+" ("+m.Name+")", "not measured")
			continue
		}
		lean, cl, direct := pick(runs[lLean], rps), pick(runs[lClose], rps), pick(runs[lLeanDirect], rps)
		ratio := medianF(ratios(lean, cl))
		v := Verdict{Target: names[0] + " (" + m.Name + ")", Met: ratio >= targetLeanVsClose,
			Figure: fmt.Sprintf("%.2f× (%.0f vs %.0f req/s); without the gateway %.2f× (%.0f req/s)", ratio, medianF(lean), medianF(cl),
				medianF(ratios(direct, cl)), medianF(direct))}
		if !v.Met {
			v.Limit = fmt.Sprintf("R itself: the in-R compute limit is %.0f/s (p50 %s), so %.1f× plumber direct would be %.0f req/s; lean p50 %s through the gateway, %s without it.%s",
				m.Limit.RPS, fmtDur(m.Limit.P50), targetLeanVsClose, targetLeanVsClose*medianF(cl),
				fmtDur(medianDur(pick(runs[lLean], p50))), fmtDur(medianDur(pick(runs[lLeanDirect], p50))), busyNote(r))
		}
		out = append(out, v)
	}
	for _, m := range lr.Models {
		runs := m.Runs[1]
		if len(runs[lLean]) == 0 || m.Limit.P50 <= 0 {
			skip(names[1]+" ("+m.Name+")", "not measured")
			continue
		}
		p := medianDur(pick(runs[lLean], p50))
		f := float64(p) / float64(m.Limit.P50)
		v := Verdict{Target: names[1] + " (" + m.Name + ")", Met: f <= targetLeanP50,
			Figure: fmt.Sprintf("%.2f× (p50 %s vs %s in R; %s without the gateway)", f, fmtDur(p), fmtDur(m.Limit.P50), fmtDur(medianDur(pick(runs[lLeanDirect], p50))))}
		if !v.Met {
			v.Limit = fmt.Sprintf("what a request does besides the handler: plumber's routing steps, parsing and serializing in R, the pipes, the supervisor, and the gateway's TLS, auth and proxying (the difference between through and without the gateway).%s%s", stagesNote(m.Stages), busyNote(r))
		}
		out = append(out, v)
	}
	if len(lr.Forks) == 0 {
		skip(names[2], "not measured: "+lr.ForksErr)
	} else {
		med := medianDur(lr.Forks)
		out = append(out, Verdict{Target: names[2], Met: med <= targetFork,
			Figure: fmt.Sprintf("median %s over %d forks (%s)", fmtDur(med), len(lr.Forks), joinDur(lr.Forks)),
			Limit:  "fork() of the loaded R session and the worker's first words over its pipes" + busyNote(r)})
	}
	if len(lr.PSS) == 0 {
		skip(names[3], "not measured: "+lr.PSSErr)
	}
	for _, pc := range lr.PSS {
		f := float64(pc.PSS4) / float64(pc.PSS1)
		out = append(out, Verdict{Target: names[3] + " (" + pc.Name + ")", Met: f <= targetPSS4,
			Figure: fmt.Sprintf("%.2f× (%s vs %s: the loaded session and its workers, after serving)", f, mib(pc.PSS4), mib(pc.PSS1)),
			Limit: "R's memory manager writes into the loaded session's heap pages: a worker's first requests (its first collections and allocations) copy most of the session's small objects (R itself and the packages, some 60–90 MB), a full collection the rest; " +
				"a large model's data (long vectors, whose pages the collector does not write) stays shared. Warming the session with requests before forking and larger R_NSIZE/R_VSIZE did not lower it (docs/runtime.md)"})
	}
	if f := lr.Fault; f == nil {
		skip(names[4], "not measured")
	} else {
		failedN, base := f.Stats.Failed(), f.Baseline.Failed()
		out = append(out, Verdict{Target: names[4], Met: f.Killed && failedN <= base+1,
			Figure: fmt.Sprintf("%d failed of %d at %d req/s with a busy worker killed (%s); the same load without the kill: %d failed (%s)",
				failedN, f.Stats.Requests, f.Rate, f.Stats.CodesString(), base, f.Baseline.CodesString()),
			Limit: "requests other than the killed worker's failed, beyond what fails without the kill"})
	}
	return out
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// stagesNote sums up where a lean request's time went (--timing), for a
// verdict: the handler, R's other stages, and the supervisor and pipes.
func stagesNote(ls *LeanStages) string {
	if ls == nil || len(ls.Stages) == 0 {
		return ""
	}
	var handler, rOther, rest float64
	var parts []string
	for _, st := range ls.Stages {
		switch {
		case st.Name == "r-handler":
			handler = st.Mean
		case strings.HasPrefix(st.Name, "r-"):
			rOther += st.Mean
			parts = append(parts, fmt.Sprintf("%s %.2f", st.Name, st.Mean))
		default:
			rest += st.Mean
		}
	}
	return fmt.Sprintf(" Measured stage by stage without the gateway (means): the handler %.2f ms, R's other stages %.2f ms (%s), the supervisor and the pipes %.2f ms.",
		handler, rOther, strings.Join(parts, ", "), rest)
}
