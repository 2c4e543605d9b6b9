package harness

import (
	"cmp"
	"slices"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/bench/internal/sysinfo"
)

// Results is everything one run measured, for the report.
type Results struct {
	Config   Config
	Command  string
	Smoke    bool
	Repeats  int
	Seed     uint64
	Started  time.Time
	Elapsed  time.Duration
	Machine  sysinfo.Machine
	Versions [][2]string
	// BackgroundBefore is the share of all CPUs that other processes used
	// while the harness sat idle before starting anything (0..1).
	BackgroundBefore float64
	// BackgroundDuring is the share of all CPUs busy during the run with
	// something other than the processes the harness started (other users'
	// work, and kernel interrupt work not charged to a process).
	BackgroundDuring      float64
	LoadBefore, LoadAfter string

	Gateway    *GatewayResult
	R          *RResult
	Overload   *OverloadResult
	Rollout    *RolloutResult
	Deploy     *DeployResult
	Containers *ContainersResult
	Lean       *LeanResult
	Storm      *StormResult
	Profile    *ProfileResult
	Autoscale  *AutoscaleResult
	Memory     MemoryResult

	Verdicts []Verdict
	Failures []string
}

// Gateway variant names.
const (
	vDirect         = "direct"
	vNginx          = "nginx"
	vPlumblineHTTP  = "plumbline-http"
	vPlumblineHTTPS = "plumbline-https"
	// vPlumblineNoLog is a diagnostic: plumbline-http without its access
	// log, to show what the per-request log line costs.
	vPlumblineNoLog = "plumbline-http-nolog"
	// vPlumblineFast is plumbline-http with serve --http1 fast (the
	// gateway's own HTTP/1.1 loop), beside it to decide the default.
	vPlumblineFast = "plumbline-http-h1loop"
	vNginxTLS      = "nginx-https"
	vPlumblineH2   = "plumbline-https-h2"
)

// GatewayResult is scenario 1.
type GatewayResult struct {
	Variants []string          // display order
	Desc     map[string]string // what each variant is
	LoadGen  string            // the closed-loop generator
	Conns    int
	Rate     int
	// Per variant, one entry per repeat.
	Closed     map[string][]load.Stats
	Fixed      map[string][]load.Stats
	ProxyCPU   map[string][]time.Duration // per request, in the closed-loop runs
	BackendCPU map[string][]time.Duration
	GenCPU     map[string][]time.Duration
	// FixedProxyCPU and FixedBackendCPU are per request in the fixed-rate
	// runs, where every variant sees the same offered load.
	FixedProxyCPU, FixedBackendCPU map[string][]time.Duration
	// Generator names each variant's closed-loop generator.
	Generator map[string]string
	// Handshake is the handshake storm (nil if not run).
	Handshake *HandshakeResult
}

// HandshakeResult is the TLS handshake storm of scenario 1: a new
// connection per request.
type HandshakeResult struct {
	Variants []string
	Conns    int
	Closed   map[string][]load.Stats
	ProxyCPU map[string][]time.Duration // per handshake (request)
}

// RResult is scenario 2.
type RResult struct {
	Limit    rscript.Limit
	LimitErr string
	Conc     map[int]int // instances → closed-loop concurrency
	Variants []string
	Desc     map[string]string
	// Runs[instances][variant] holds one entry per repeat.
	Runs map[int]map[string][]load.Stats
	// PlumberBoot is a harness plumber's exec → first 200 on /ready.
	PlumberBoot time.Duration
}

// R variant names.
const (
	rNaive      = "plumber direct, keep-alive (naive Go client)"
	rClose      = "plumber direct, new connection per request"
	rNginx      = "nginx → plumber, default proxy_pass"
	rNginxKA    = "nginx → plumber, upstream keepalive"
	rPlumbline  = "plumbline → plumber"
	rLimitLabel = "in-R compute limit (one R process, no HTTP)"
)

// OverloadResult is scenario 3.
type OverloadResult struct {
	Instances, MaxConcurrent int
	Delay                    time.Duration
	Capacity                 float64 // requests/s the instances can serve
	Rate                     int
	Stats                    load.Stats
	// P50To429 and P99To429 are the latencies of the 429 answers; P99OK that
	// of the admitted ones.
	P50To429, P99To429, P50OK, P99OK time.Duration
	Count429, Count5xx               int
	// MaxSeen is the most concurrent requests each instance's backend ever
	// counted, by instance.
	MaxSeen map[string]int
}

// RolloutStep is one phase of scenario 4.
type RolloutStep struct {
	Name   string
	Action string // the CLI command that started it
	// Green is the configured share of green (percent); -1 when the step has
	// no single expected split (a rolling replacement in progress).
	Green int
	// Counted is the settled window: answers from 250 ms after the command
	// returned to the start of the next step.
	Counted, GreenAnswers, Failed int
	ActionTime                    time.Duration // how long the command took
}

// RolloutResult is scenario 4.
type RolloutResult struct {
	Rate     int
	Steps    []RolloutStep
	Total    load.Stats
	Failed   int
	Failures []string // a few of them: time, code, error
	// StartToReady is, per instance of blue and green in start order,
	// Started → Ready from the server's events.
	StartToReady []readyTime
}

// ContainersResult is scenario 7: per driver (process, docker), one entry
// per repeat.
type ContainersResult struct {
	// Skipped says why the scenario did not run ("" if it did).
	Skipped string
	// Build is `plumbline image build` of the example's docker-context.
	Build        time.Duration
	FirstOK      map[string][]time.Duration // create started → first 200
	StartToReady map[string][]time.Duration // the instance's Started → Ready events
	Runs         map[string][]load.Stats    // closed loop, one connection
}

// DeployResult is scenario 5: one entry per repeat.
type DeployResult struct {
	FirstOK    []time.Duration // CLI create started → first 200 through the gateway
	CLIReturn  []time.Duration // CLI create (--no-wait) returned
	Succeeded  []time.Duration // create started → provisioning_state Succeeded
	ScaleReady []time.Duration // CLI update instance_count=2 started → 2 ready instances
	// FirstStartToReady and SecondStartToReady are, from the server's
	// events, how long the created instance and the one added by the scale
	// took from Started to Ready (the process start, R's loading and the
	// readiness probing).
	FirstStartToReady, SecondStartToReady []time.Duration
}

// MemoryResult is scenario 6, gathered by the others.
type MemoryResult struct {
	// ServeIdle is each plumbline server's memory after start-up with the
	// gateway endpoint's two deployments, before any load; ServeRun1 is
	// read right after run 1 (its HWM is the peak so far).
	ServeIdle, ServeRun1 map[string]proc.Mem
	// NginxIdle and NginxPeak sum nginx's master and workers (RSS sampled
	// every 100 ms during run 1).
	NginxIdle, NginxPeak uint64
	NginxProcs           int
	// R lists each R process: the harness's plumbers and plumbline's
	// instances, after the R scenario.
	R []NamedMem
}

// NamedMem is one process's memory.
type NamedMem struct {
	Name string
	Mem  proc.Mem
}

// Verdict is a target stated as met or not, with its figure.
type Verdict struct {
	Target string
	Met    bool
	// Skipped means it could not be judged (scenario not run or failed).
	Skipped bool
	Figure  string
	// Limit says what limits the figure when the target is not met.
	Limit string
}

// median helpers.

func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMaxF(fs []float64) (float64, float64) {
	if len(fs) == 0 {
		return 0, 0
	}
	return slices.Min(fs), slices.Max(fs)
}

// pick extracts one figure from each run.
func pick[T any](runs []load.Stats, f func(load.Stats) T) []T {
	out := make([]T, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

func rps(s load.Stats) float64       { return s.RPS }
func p50(s load.Stats) time.Duration { return s.P50 }
func p99(s load.Stats) time.Duration { return s.P99 }
func failed(s load.Stats) int        { return s.Failed() }
func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
