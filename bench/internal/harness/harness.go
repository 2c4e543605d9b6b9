// Package harness is plumbline's benchmark suite (issue 7): in one run it
// starts everything on loopback — a trivial Go backend, nginx with a
// generated configuration, plumber processes, and `plumbline serve` from the
// built binary on temporary data dirs — measures seven scenarios side by side,
// states each performance target as met or not with its figure, and renders
// the report (docs/benchmarks.md and a terminal table).
//
// The scenarios:
//
//  1. gateway  — the hop on a trivial Go backend: direct, nginx over HTTP
//     and HTTPS, plumbline over HTTP, HTTPS and HTTP/2; closed-loop
//     requests/s and p50/p99 at a fixed rate; CPU per request of proxy and
//     backend; a TLS handshake storm (a new connection per request) against
//     nginx and plumbline.
//  2. r        — the iris example behind plumber: the in-R compute limit,
//     plumber direct (naive keep-alive, new connection per request), nginx
//     → plumber (default, upstream keepalive), plumbline → plumber; 1 and 2
//     instances.
//  3. overload — twice the capacity with max_concurrent_requests_per_instance
//     1: backend-side concurrency, time to a 429, no 5xx.
//  4. rollout  — blue → green in steps under constant load, then a rolling
//     instance replacement: failed requests and split accuracy.
//  5. deploy   — create → first 200, scale 1 → 2 → second instance ready.
//  6. memory   — plumbline serve idle and at peak in run 1, nginx beside it,
//     each R instance (measured within 1 and 2).
//  7. containers — the iris example under `serve --driver docker` (the
//     seed's docker-context built as its image) beside the process driver:
//     create → first 200, Started → Ready, requests/s through the gateway.
//  8. storm    — a client at a fixed rate over HTTPS, quiet and during a
//     flood of 5 000 silent connections and 200 slowloris clients from 24
//     other loopback addresses: latency, errors, memory.
//  9. lean     — the lean R runtime beside plumber's own server on the iris
//     example and a slower 500-tree ranger model, at 1 and 2 instances or
//     workers; fork time of +1 worker; PSS of 1 vs 4 workers; a worker
//     killed under load.
//
// The profile scenario adds where the gateway's CPU goes per request, by
// category (bench/cmd/gateway-profile), to section 1 of the report.
//
// Variants are run in a shuffled order, repeated, and reported as medians
// (performance.md §9). Everything the harness starts runs in a proc.Group
// and is stopped when Run returns, whether it succeeded, failed or was
// interrupted.
//
// It may import bench/internal/... and plumbline's public api package; it
// drives plumbline only through its binary.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/nginx"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/bench/internal/serve"
	"github.com/plumbline/plumbline/bench/internal/sysinfo"
)

// Scenario names, in the order they run.
var Scenarios = []string{"gateway", "profile", "storm", "r", "overload", "rollout", "deploy", "containers", "lean"}

// Config is one benchmark run. Zero values take the defaults of the full
// run, or of the smoke run when Smoke is set.
type Config struct {
	// RepoRoot is the module root: examples/ and bench/ are found there.
	RepoRoot string
	// Plumbline is the built plumbline binary.
	Plumbline string
	// Backend is the bench-backend binary; empty builds bench/cmd/bench-backend.
	Backend string
	// Nginx, Wrk and Rscript are the tools (default: looked up on PATH).
	// Wrk "" with LoadGen "go" is not needed.
	Nginx, Wrk, Rscript string
	// LoadGen is the closed-loop generator of the gateway scenario: "wrk",
	// "go" or "auto" (wrk when installed; the default).
	LoadGen string
	// Smoke runs every scenario for about a second, once: it proves the
	// harness works and its numbers mean nothing.
	Smoke bool
	// Only limits the run to these scenarios (nil: all).
	Only []string
	// Repeats is how many times each variant runs (default 3; smoke 1).
	Repeats int
	// Seed orders the variants (0: from the clock; reported).
	Seed uint64
	// Conns is the closed-loop connection count of the gateway scenario
	// (default 64).
	Conns int
	// GatewayRate is the fixed rate of the gateway latency runs (default
	// 2000/s); RolloutRate that of the rollout (default 200/s).
	GatewayRate, RolloutRate int
	// Run lengths: a gateway closed-loop or fixed-rate run (default 5 s), an
	// R variant (5 s), the overload (10 s), a rollout step (5 s).
	GatewayRun, RRun, OverloadRun, RolloutStep time.Duration
	// OverloadDelay is the backend's service time in the overload scenario
	// (default 20 ms: 50 requests/s per instance).
	OverloadDelay time.Duration
	// StormRate is the well-behaved client's rate in the storm scenario
	// (default 1000/s); StormSilent and StormSlowloris size the flood
	// (default 5000 and 200; smoke 200 and 20).
	StormRate, StormSilent, StormSlowloris int
	// ProfileRun is the length of the gateway profile per protocol
	// (default 8 s; smoke 1 s).
	ProfileRun time.Duration
	// DockerHost is the container engine's Docker API address for the
	// containers scenario ("" : DOCKER_HOST, else PLUMBLINE_TEST_DOCKER_HOST,
	// else the scenario is skipped with that reason).
	DockerHost string
	// KeepTemp keeps the temporary folder (logs, configs, data dirs).
	KeepTemp bool
	// Command is the command line, for the report.
	Command string
	// Log receives progress lines (nil: discarded).
	Log io.Writer
}

func (c *Config) defaults() {
	def := func(d *time.Duration, full, smoke time.Duration) {
		if *d == 0 {
			*d = full
			if c.Smoke {
				*d = smoke
			}
		}
	}
	if c.Repeats == 0 {
		c.Repeats = 3
		if c.Smoke {
			c.Repeats = 1
		}
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Conns == 0 {
		c.Conns = 64
	}
	if c.GatewayRate == 0 {
		c.GatewayRate = 2000
	}
	if c.RolloutRate == 0 {
		c.RolloutRate = 200
	}
	def(&c.GatewayRun, 5*time.Second, time.Second)
	def(&c.RRun, 5*time.Second, time.Second)
	def(&c.OverloadRun, 10*time.Second, time.Second)
	def(&c.RolloutStep, 5*time.Second, time.Second)
	def(&c.ProfileRun, 8*time.Second, time.Second)
	if c.OverloadDelay == 0 {
		c.OverloadDelay = 20 * time.Millisecond
	}
	if c.StormRate == 0 {
		c.StormRate = 1000
	}
	if c.StormSilent == 0 {
		c.StormSilent = 5000
		if c.Smoke {
			c.StormSilent = 200
		}
	}
	if c.StormSlowloris == 0 {
		c.StormSlowloris = 200
		if c.Smoke {
			c.StormSlowloris = 20
		}
	}
	if c.Nginx == "" {
		c.Nginx = "nginx"
	}
	if c.Rscript == "" {
		c.Rscript = "Rscript"
	}
	if c.LoadGen == "" {
		c.LoadGen = "auto"
	}
	if c.DockerHost == "" {
		c.DockerHost = os.Getenv("DOCKER_HOST")
	}
	if c.DockerHost == "" {
		c.DockerHost = os.Getenv("PLUMBLINE_TEST_DOCKER_HOST")
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

func (c *Config) want(s string) bool { return len(c.Only) == 0 || slices.Contains(c.Only, s) }

// env is the state of one run: the configuration, the temporary folder, the
// processes started so far and the results gathered so far.
type env struct {
	cfg *Config
	tmp string
	g   *proc.Group
	res *Results
	rnd *rand.Rand

	backend string // bench-backend binary
	wrk     string // "" when the Go closed-loop generator is used
	h2load  string // "" when HTTP/2 closed loops use the Go generator

	https *serve.Server // plumbline serve with TLS (the default)
	http  *serve.Server // plumbline serve --insecure-http

	plumberBoot time.Duration // a harness plumber process's exec → ready
}

func (e *env) logf(format string, a ...any) {
	fmt.Fprintf(e.cfg.Log, "[%6.1fs] "+format+"\n", append([]any{time.Since(e.res.Started).Seconds()}, a...)...)
}

// Run runs the benchmark and returns its results. A scenario that fails is
// reported in Results.Failures and in the returned error; the others still
// run, so the results are worth rendering either way.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg.defaults()
	res := &Results{Started: time.Now(), Command: cfg.Command, Smoke: cfg.Smoke, Repeats: cfg.Repeats, Seed: cfg.Seed, Config: cfg}
	e := &env{cfg: &cfg, res: res, rnd: rand.New(rand.NewPCG(cfg.Seed, 0x706c756d62))}
	if err := e.preflight(); err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp("", "plumbline-bench-")
	if err != nil {
		return res, err
	}
	// A server running as root runs its instances as an unprivileged user,
	// who must be able to enter the data dirs made in here.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return res, err
	}
	e.tmp = tmp
	if err := os.MkdirAll(filepath.Join(tmp, "logs"), 0o755); err != nil {
		return res, err
	}
	e.g = proc.NewGroup(filepath.Join(tmp, "logs"))
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		e.logf("stopping everything the harness started")
		e.g.StopAll()
		if cfg.KeepTemp {
			e.logf("kept %s (logs, configs, data dirs)", tmp)
		} else {
			removeAll(tmp)
		}
	}
	defer stopAll()
	e.logf("temporary folder %s; seed %d", tmp, cfg.Seed)

	res.Machine = sysinfo.Read()
	res.LoadBefore = sysinfo.LoadAvg()
	quiet := 2 * time.Second
	if cfg.Smoke {
		quiet = 500 * time.Millisecond
	}
	res.BackgroundBefore = sysinfo.Background(quiet)
	e.logf("machine: %s, %d CPUs; CPU used by others while idle: %.0f%%; load average %s",
		res.Machine.CPUModel, res.Machine.Cores, 100*res.BackgroundBefore, res.LoadBefore)
	e.versions()

	if e.backend, err = e.buildBackend(ctx); err != nil {
		return res, err
	}
	cpu0, tree0 := sysinfo.ReadCPU(), treeCPU()
	wall0 := time.Now()

	var errs []error
	for _, s := range Scenarios {
		if !cfg.want(s) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		e.logf("scenario %s", s)
		var err error
		switch s {
		case "gateway":
			err = e.gateway(ctx)
		case "profile":
			err = e.profile(ctx)
		case "storm":
			err = e.storm(ctx)
		case "r":
			err = e.rScenario(ctx)
		case "overload":
			err = e.overload(ctx)
		case "rollout":
			err = e.rollout(ctx)
		case "deploy":
			err = e.deploy(ctx)
		case "containers":
			err = e.containers(ctx)
		case "lean":
			err = e.leanScenario(ctx)
		}
		if err != nil {
			err = fmt.Errorf("scenario %s: %w", s, err)
			e.logf("%v", err)
			res.Failures = append(res.Failures, err.Error())
			errs = append(errs, err)
		}
	}
	res.LoadAfter = sysinfo.LoadAvg()
	// Once everything is stopped and reaped, this process's children CPU
	// holds the whole tree's: what is left of the machine's busy time was
	// someone else's.
	stopAll()
	if wall := time.Since(wall0); wall > 0 {
		others := sysinfo.BusyTime(cpu0, sysinfo.ReadCPU()) - (treeCPU() - tree0)
		res.BackgroundDuring = max(0, others.Seconds()/(wall.Seconds()*float64(res.Machine.Cores)))
	}
	res.Elapsed = time.Since(res.Started)
	res.Verdicts = verdicts(res)
	return res, errors.Join(errs...)
}

// treeCPU is the CPU this process and its reaped descendants have used.
func treeCPU() time.Duration {
	st, err := proc.ReadStat(os.Getpid())
	if err != nil {
		return 0
	}
	return st.CPU + st.ChildrenCPU
}

// preflight finds the tools and says plainly what is missing.
func (e *env) preflight() error {
	c := e.cfg
	var missing []string
	if c.RepoRoot == "" {
		missing = append(missing, "the repository root (RepoRoot)")
	}
	if _, err := os.Stat(c.Plumbline); err != nil {
		missing = append(missing, fmt.Sprintf("the plumbline binary %q (run make build or set PLUMBLINE_BIN)", c.Plumbline))
	}
	if p, err := exec.LookPath(c.Nginx); err != nil {
		missing = append(missing, "nginx (Debian: apt-get install nginx-light)")
	} else {
		c.Nginx = p
	}
	if c.want("r") || c.want("deploy") || c.want("containers") || c.want("lean") {
		if err := rscript.Check(c.Rscript); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if c.want("lean") {
		if err := rscript.CheckPackages(c.Rscript, "ranger"); err != nil {
			missing = append(missing, err.Error())
		}
	}
	switch c.LoadGen {
	case "go":
	case "wrk", "auto":
		w := c.Wrk
		if w == "" {
			w = "wrk"
		}
		if p, err := exec.LookPath(w); err == nil {
			e.wrk = p
		} else if c.LoadGen == "wrk" {
			missing = append(missing, "wrk (Debian: apt-get install wrk), or use -loadgen go")
		}
	default:
		return fmt.Errorf("load generator %q: want wrk, go or auto", c.LoadGen)
	}
	if c.LoadGen != "go" {
		if p, err := exec.LookPath("h2load"); err == nil {
			e.h2load = p // optional: without it HTTP/2 runs use the Go generator
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cannot run the benchmarks; missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

// versions records the versions of everything on the measured paths.
func (e *env) versions() {
	r := e.res
	add := func(k, v string) { r.Versions = append(r.Versions, [2]string{k, v}) }
	add("plumbline", serve.Version(e.cfg.Plumbline))
	add("Go (harness)", goVersion())
	add("nginx", nginx.Version(e.cfg.Nginx))
	if e.wrk != "" {
		out, _ := exec.Command(e.wrk, "-v").CombinedOutput()
		line, _, _ := strings.Cut(string(out), "\n")
		add("wrk", strings.TrimSpace(strings.TrimSuffix(line, "Copyright (C) 2012 Will Glozer")))
	}
	if e.h2load != "" {
		out, _ := exec.Command(e.h2load, "--version").CombinedOutput()
		add("h2load", strings.TrimSpace(string(out)))
	}
	add("vegeta (library)", moduleVersion("github.com/tsenart/vegeta/v12"))
	if e.cfg.want("r") || e.cfg.want("deploy") || e.cfg.want("lean") {
		v := rscript.Versions(e.cfg.Rscript)
		for _, k := range []string{"R", "plumber", "httpuv", "jsonlite", "randomForest", "ranger"} {
			add(k, v[k])
		}
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "unknown"
}

// buildBackend builds bench/cmd/bench-backend into the temporary folder
// unless Config.Backend names a binary.
func (e *env) buildBackend(ctx context.Context) (string, error) {
	if e.cfg.Backend != "" {
		return filepath.Abs(e.cfg.Backend)
	}
	out := filepath.Join(e.tmp, "bench-backend")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./bench/cmd/bench-backend")
	cmd.Dir = e.cfg.RepoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bench-backend: %w\n%s", err, b)
	}
	return out, nil
}

// startBackend runs one harness-owned Go backend and returns its address.
func (e *env) startBackend(ctx context.Context, name string, args ...string) (string, *proc.Proc, error) {
	port, err := proc.FreePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(e.backend, append([]string{"--port", fmt.Sprint(port)}, args...)...)
	p, err := e.g.Start(name, cmd, proc.Options{})
	if err != nil {
		return "", nil, err
	}
	if err := proc.WaitTCP(p, addr, 10*time.Second); err != nil {
		return "", nil, err
	}
	return addr, p, nil
}

// serveHTTPS returns the TLS plumbline server, starting it on first use.
func (e *env) serveHTTPS(ctx context.Context) (*serve.Server, error) {
	if e.https == nil {
		s, err := serve.Start(ctx, e.g, "plumbline-https", e.cfg.Plumbline, filepath.Join(e.tmp, "data-https"), false)
		if err != nil {
			return nil, err
		}
		e.https = s
	}
	return e.https, nil
}

// serveHTTP returns the plain-HTTP plumbline server, starting it on first use.
func (e *env) serveHTTP(ctx context.Context) (*serve.Server, error) {
	if e.http == nil {
		s, err := serve.Start(ctx, e.g, "plumbline-http", e.cfg.Plumbline, filepath.Join(e.tmp, "data-http"), true)
		if err != nil {
			return nil, err
		}
		e.http = s
	}
	return e.http, nil
}

// shuffled returns a shuffled copy of names.
func (e *env) shuffled(names []string) []string {
	out := slices.Clone(names)
	e.rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// writeFile writes a generated file into the temporary folder.
func (e *env) writeFile(name, content string) (string, error) {
	p := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, []byte(content), 0o644)
}

// removeAll removes dir, first making the read-only trees plumbline
// materializes inside its data dirs writable again.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// scoreTarget is a scoring request to a plumbline endpoint with its key.
func scoreTarget(s *serve.Server, endpoint, key string, body []byte) load.Target {
	return load.Target{Method: "POST", URL: s.ScoringURL(endpoint), Body: body, Header: map[string][]string{
		"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"},
	}}
}
