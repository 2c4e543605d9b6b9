// Package gwprofile profiles the gateway's own CPU and allocations per
// request: it runs plumbline's gateway in this process, configured as
// `plumbline serve` configures it (key auth, a 50/50 split over two
// deployments, metrics, the access log, the same HTTP server settings and
// TLS), in front of two bench-backend processes, drives it with wrk, and
// reads a CPU profile (runtime/pprof) and the allocator's counters while it
// does. The result says where each request's microseconds go, by category
// (net/http server, TLS, proxying, auth, admission, metrics, access log,
// upstream writes and reads, GC, scheduler), for docs/benchmarks.md.
//
// It runs the gateway package in-process, which the benchmark harness never
// does for its measurements (it drives the built binary): this is a
// profiler, not a benchmark. Only this process runs the gateway, so its CPU
// time is the gateway's.
package gwprofile

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/internal/gateway"
	"github.com/plumbline/plumbline/internal/gateway/h1"
	"github.com/plumbline/plumbline/internal/gcpace"
	"github.com/plumbline/plumbline/internal/tlsca"
)

// Config is one profiling run.
type Config struct {
	// Backend is the bench-backend binary.
	Backend string
	// Wrk is the wrk binary.
	Wrk string
	// HTTPS serves TLS, as `plumbline serve` does by default; false is
	// `serve --insecure-http`.
	HTTPS bool
	// Fast serves plain HTTP/1.1 scoring requests on the gateway's own
	// loop (serve --http1 fast, internal/gateway/h1) instead of net/http's
	// server. It changes nothing for HTTPS.
	Fast bool
	// Conns and Duration shape the wrk run (defaults 64 and 8 s).
	Conns    int
	Duration time.Duration
	// TempDir receives the access log, the TLS files and wrk's script.
	TempDir string
	// KeepProfile, if set, receives the raw CPU profile (for go tool pprof).
	KeepProfile string
	// Log receives progress lines (nil: discarded).
	Log io.Writer
}

// Result is what one run measured.
type Result struct {
	HTTPS    bool
	Fast     bool
	Requests int
	RPS      float64
	// CPUPerRequest is this process's CPU time (user + system) during the
	// profiled run divided by the requests answered.
	CPUPerRequest time.Duration
	// AllocsPerRequest and BytesPerRequest come from runtime.MemStats.
	AllocsPerRequest float64
	BytesPerRequest  float64
	// GCCycles is how many garbage collections ran during the run.
	GCCycles uint32
	// ReadsPerRequest and WritesPerRequest are this process's read and
	// write system calls (/proc/self/io), SwitchesPerRequest its context
	// switches (getrusage: a thread that slept and was woken, or was
	// preempted), per request: counts that hold on a busy machine.
	ReadsPerRequest, WritesPerRequest, SwitchesPerRequest float64
	// Shares is the CPU profile by category, largest first.
	Shares []Share
	// Samples is the number of CPU profile samples.
	Samples int
}

const endpointName = "gwprofile"

// key is the endpoint's key; the run is private to this process.
const key = "gwprofile-key-0123456789abcdef"

// Run runs one profile.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Conns == 0 {
		cfg.Conns = 64
	}
	if cfg.Duration == 0 {
		cfg.Duration = 8 * time.Second
	}
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "gateway-profile: "+format+"\n", a...)
		}
	}
	g := proc.NewGroup(cfg.TempDir)
	defer g.StopAll()
	var addrs []string
	for _, name := range []string{"blue-0", "green-0"} {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := g.Start(name, exec.Command(cfg.Backend, "--port", strconv.Itoa(port)), proc.Options{})
		if err != nil {
			return nil, err
		}
		if err := proc.WaitTCP(p, addr, 10*time.Second); err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}

	// As serve paces its garbage collector.
	gcCtx, gcStop := context.WithCancel(ctx)
	defer gcStop()
	gcpace.Start(gcCtx, gcpace.DefaultHeadroom)
	front, fast, stop, err := startGateway(cfg, addrs)
	if err != nil {
		return nil, err
	}
	defer stop()
	logf("gateway at %s → backends %v", front, addrs)

	target := load.Target{Method: "POST", URL: front + "/endpoints/" + endpointName + "/score",
		Body:   []byte(`{"data":[[5.1,3.5,1.4,0.2]]}`),
		Header: http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}}
	wrk := func(d time.Duration) (load.Stats, error) {
		return load.Wrk{Bin: cfg.Wrk, Target: target, Conns: cfg.Conns, Threads: max(1, min(runtime.NumCPU(), 4)), Duration: d, ScriptDir: cfg.TempDir}.Run(ctx)
	}
	if _, err := wrk(time.Second); err != nil { // warm-up: connections, pools, TLS sessions
		return nil, err
	}

	var prof bytes.Buffer
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	r0, w0, _ := proc.ReadSyscalls(os.Getpid())
	sw0 := selfSwitches()
	cpu0 := selfCPU()
	if err := pprof.StartCPUProfile(&prof); err != nil {
		return nil, err
	}
	st, err := wrk(cfg.Duration)
	pprof.StopCPUProfile()
	cpu1 := selfCPU()
	sw1 := selfSwitches()
	r1, w1, _ := proc.ReadSyscalls(os.Getpid())
	runtime.ReadMemStats(&ms1)
	if err != nil {
		return nil, err
	}
	if st.Requests == 0 || st.OK == 0 {
		return nil, fmt.Errorf("wrk: no successful request (%s)", st.CodesString())
	}
	if fast != nil && fast.Served() < uint64(st.Requests) {
		return nil, fmt.Errorf("the h1 loop served %d of %d requests: the rest were handed to net/http's server", fast.Served(), st.Requests)
	}
	if cfg.KeepProfile != "" {
		if err := os.WriteFile(cfg.KeepProfile, prof.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	p, err := profile.Parse(&prof)
	if err != nil {
		return nil, fmt.Errorf("read the CPU profile: %w", err)
	}
	n := float64(st.Requests)
	res := &Result{
		HTTPS:              cfg.HTTPS,
		Fast:               cfg.Fast && !cfg.HTTPS,
		Requests:           st.Requests,
		RPS:                st.RPS,
		CPUPerRequest:      time.Duration(float64(cpu1-cpu0) / n),
		AllocsPerRequest:   float64(ms1.Mallocs-ms0.Mallocs) / n,
		BytesPerRequest:    float64(ms1.TotalAlloc-ms0.TotalAlloc) / n,
		GCCycles:           ms1.NumGC - ms0.NumGC,
		ReadsPerRequest:    float64(r1-r0) / n,
		WritesPerRequest:   float64(w1-w0) / n,
		SwitchesPerRequest: float64(sw1-sw0) / n,
		Shares:             classify(p),
		Samples:            len(p.Sample),
	}
	logf("%d requests (%.0f/s), %s CPU and %.1f allocations per request; %d garbage collections (one per %.0f requests)",
		res.Requests, res.RPS, res.CPUPerRequest, res.AllocsPerRequest, res.GCCycles, n/float64(max(1, res.GCCycles)))
	return res, nil
}

// selfSwitches is this process's context switches so far, voluntary and
// not.
func selfSwitches() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Nvcsw + ru.Nivcsw
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startGateway serves the gateway the way `plumbline serve` does and
// returns its base URL.
func startGateway(cfg Config, addrs []string) (string, *h1.Listener, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	logFile, err := os.Create(filepath.Join(cfg.TempDir, "access.log"))
	if err != nil {
		return "", nil, nil, err
	}
	// As serve does: the server log and the batched access log share stderr.
	alog, err := gateway.NewAccessLog(logFile, gateway.AccessLogText)
	if err != nil {
		return "", nil, nil, err
	}
	gw, err := gateway.New(gateway.Config{
		Domains:    []string{"localhost"},
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
		AccessLog:  alog,
	})
	if err != nil {
		return "", nil, nil, err
	}
	deps := map[string]*gateway.Deployment{}
	for i, name := range []string{"blue", "green"} {
		deps[name] = &gateway.Deployment{Name: name, ScoringPath: "/score", RequestTimeout: 10 * time.Second,
			MaxConcurrentPerInstance: 1024, Instances: []gateway.Instance{{Name: name + "-0", Addr: addrs[i]}}}
	}
	gw.Update(&gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{endpointName: {
		Name: endpointName, AuthMode: "key", Keys: []string{key, "secondary-" + key},
		Traffic: map[string]int{"blue": 50, "green": 50}, Mirror: map[string]int{}, Deployments: deps,
	}}})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", gw)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelDebug)}
	scheme := "http"
	var l net.Listener = ln
	if cfg.HTTPS {
		ca, err := tlsca.Ensure(filepath.Join(cfg.TempDir, "tls"), []string{"localhost"})
		if err != nil {
			return "", nil, nil, err
		}
		srv.TLSConfig = tlsca.ServerTLSConfig(ca.GetCertificate)
		l = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	var fast *h1.Listener
	if cfg.Fast && !cfg.HTTPS {
		fast = h1.NewListener(ln, srv, gw.Scoring)
		l = fast
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "gateway-profile: serve:", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if fast != nil {
			_ = fast.Shutdown(ctx)
		}
		_ = gw.Shutdown(ctx)
		_ = alog.Close()
		_ = logFile.Close()
	}
	return scheme + "://" + ln.Addr().String(), fast, stop, nil
}

// Markdown renders results as a table: one column per run.
func Markdown(runs []*Result) string {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("| where the CPU goes |")
	for _, r := range runs {
		w(" %s: share | µs / request |", label(r))
	}
	w("\n|---|")
	for range runs {
		w("---|---|")
	}
	w("\n")
	seen := map[string]bool{}
	var names []string
	for _, r := range runs {
		for _, s := range r.Shares {
			if !seen[s.Category] {
				seen[s.Category] = true
				names = append(names, s.Category)
			}
		}
	}
	for _, name := range names {
		w("| %s |", name)
		for _, r := range runs {
			f := 0.0
			for _, s := range r.Shares {
				if s.Category == name {
					f = s.Fraction
				}
			}
			w(" %.1f %% | %.1f |", 100*f, f*float64(r.CPUPerRequest.Nanoseconds())/1000)
		}
		w("\n")
	}
	w("| **total CPU per request** |")
	for _, r := range runs {
		w(" 100 %% | **%.1f** |", float64(r.CPUPerRequest.Nanoseconds())/1000)
	}
	w("\n| allocations per request (bytes) |")
	for _, r := range runs {
		w(" | %.1f (%.0f B) |", r.AllocsPerRequest, r.BytesPerRequest)
	}
	w("\n| system calls per request: reads, writes; context switches |")
	for _, r := range runs {
		w(" | %.2f, %.2f; %.2f |", r.ReadsPerRequest, r.WritesPerRequest, r.SwitchesPerRequest)
	}
	w("\n| requests profiled (req/s; CPU samples) |")
	for _, r := range runs {
		w(" | %d (%.0f/s; %d) |", r.Requests, r.RPS, r.Samples)
	}
	w("\n")
	return b.String()
}

func label(r *Result) string {
	switch {
	case r.HTTPS:
		return "HTTPS"
	case r.Fast:
		return "HTTP, h1 loop"
	}
	return "HTTP"
}

// ABMarkdown compares runs of net/http's server (std) and the h1 loop
// (fast), taken in turn in one process: each figure's median over its
// runs, the ratio fast/std, and every run's figure.
func ABMarkdown(std, fast []*Result) string {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	type fig struct {
		name string
		of   func(*Result) float64
		unit string
	}
	figs := []fig{
		{"CPU per request", func(r *Result) float64 { return float64(r.CPUPerRequest.Nanoseconds()) / 1000 }, "µs"},
		{"read system calls per request", func(r *Result) float64 { return r.ReadsPerRequest }, ""},
		{"write system calls per request", func(r *Result) float64 { return r.WritesPerRequest }, ""},
		{"context switches per request", func(r *Result) float64 { return r.SwitchesPerRequest }, ""},
		{"allocations per request", func(r *Result) float64 { return r.AllocsPerRequest }, ""},
		{"requests per second", func(r *Result) float64 { return r.RPS }, ""},
	}
	w("| figure (median of %d runs each, taken in turn) | net/http server | h1 loop | h1 / net/http | every run: net/http; h1 |\n|---|---|---|---|---|\n", min(len(std), len(fast)))
	for _, f := range figs {
		a, bb := median(std, f.of), median(fast, f.of)
		w("| %s | %.2f %s | %.2f %s | %.2f | %s; %s |\n", f.name, a, f.unit, bb, f.unit, bb/a, runsOf(std, f.of), runsOf(fast, f.of))
	}
	return b.String()
}

func median(rs []*Result, of func(*Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = of(r)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runsOf(rs []*Result, of func(*Result) float64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strconv.FormatFloat(of(r), 'f', 2, 64))
	}
	return strings.Join(parts, ", ")
}
