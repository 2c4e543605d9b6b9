package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
)

// stormEndpoint is the endpoint of scenario 8.
const stormEndpoint = "stormbench"

// StormResult is scenario 8: a well-behaved client at a fixed rate, quiet
// and then during a flood of silent and slowloris connections.
type StormResult struct {
	Rate              int
	Silent, Slowloris int
	Sources           int
	Quiet, Flood      load.Stats
	// OpenDuring is plumbline_connections_open read during the flood;
	// ClosedByServer counts flood connections the server closed.
	OpenDuring     float64
	ClosedByServer int
	// MemBefore is serve's memory before the flood, MemDuring at its end.
	MemBefore, MemDuring proc.Mem
	// Serve's own figures for each run: its CPU time per request, the
	// goroutines it had at the end (go_goroutines) and the garbage
	// collections it ran (go_gc_duration_seconds_count) — where the flood's
	// cost to the other client shows.
	QuietServe, FloodServe ServeFigures
	SetUp                  time.Duration // to open the flood
}

// ServeFigures are serve's own figures over one run of the storm scenario.
type ServeFigures struct {
	CPUPerRequest time.Duration
	// ReadsPerRequest are serve's read system calls per answered request
	// (every wake-up for a connection's bytes is one).
	ReadsPerRequest float64
	Goroutines      float64
	GCs             float64
}

// storm is scenario 8.
func (e *env) storm(ctx context.Context) error {
	c := e.cfg
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, stormEndpoint)
	if err != nil {
		return err
	}
	if err := e.createGeneric(ctx, s, stormEndpoint, "blue", nil, 1024, 1); err != nil {
		return err
	}
	if _, err := s.CLI(ctx, "online-endpoint", "update", "--name", stormEndpoint, "--traffic", "blue=100", "-o", "json"); err != nil {
		return err
	}
	r := &StormResult{Rate: c.StormRate, Silent: c.StormSilent, Slowloris: c.StormSlowloris, Sources: 24}
	e.res.Storm = r
	target := scoreTarget(s, stormEndpoint, key, scoreBody)
	opts := s.ClientOptions(true)
	opts.MaxConns = c.Conns
	tr := load.NewTransport(opts)
	defer tr.CloseIdleConnections()
	if err := warmUp(ctx, "storm", load.ClosedLoop{Targets: []load.Target{target}, Conns: 8, Client: s.ClientOptions(true)}, 200*time.Millisecond); err != nil {
		return err
	}
	run := func() load.Stats {
		return load.ConstantRate{Targets: []load.Target{target}, Rate: r.Rate, Duration: c.GatewayRun, Transport: tr}.Run(ctx)
	}
	// measured runs run and records serve's figures for it.
	measured := func(f *ServeFigures) load.Stats {
		pid := s.Proc.Pid()
		gc0, cpu0 := s.Metric(ctx, "go_gc_duration_seconds_count"), proc.CPU(pid)
		r0, _, _ := proc.ReadSyscalls(pid)
		st := run()
		r1, _, _ := proc.ReadSyscalls(pid)
		cpu1, gc1 := proc.CPU(pid), s.Metric(ctx, "go_gc_duration_seconds_count")
		f.CPUPerRequest = (cpu1 - cpu0) / time.Duration(max(1, st.Requests))
		f.ReadsPerRequest = float64(r1-r0) / float64(max(1, st.Requests))
		f.Goroutines = s.Metric(ctx, "go_goroutines")
		f.GCs = gc1 - gc0
		return st
	}
	run() // warm the pooled connections
	r.Quiet = measured(&r.QuietServe)
	e.logf("storm: quiet at %d/s: p50 %s p99 %s %s", r.Rate, fmtDur(r.Quiet.P50), fmtDur(r.Quiet.P99), r.Quiet.CodesString())
	r.MemBefore, _ = proc.ReadMem(s.Proc.Pid())

	// The flood runs in a process of its own (bench/cmd/bench-flood): the
	// well-behaved client above must not share its scheduler and garbage
	// collector with thousands of flood connections.
	flood, err := e.startFlood(ctx, s.Port, r, s.CACert, "/endpoints/"+stormEndpoint+"/score")
	if err != nil {
		return err
	}
	defer flood.stop()
	r.SetUp = flood.setUp
	r.OpenDuring = s.Metric(ctx, "plumbline_connections_open")
	e.logf("storm: %d silent and %d slowloris connections from %d addresses in %s; the server holds %.0f", r.Silent, r.Slowloris, r.Sources, fmtDur(r.SetUp), r.OpenDuring)
	r.Flood = measured(&r.FloodServe)
	r.MemDuring, _ = proc.ReadMem(s.Proc.Pid())
	if r.ClosedByServer, err = flood.stop(); err != nil {
		return err
	}
	e.logf("storm: during the flood at %d/s: p50 %s p99 %s %s; serve RSS %d MiB (peak %d MiB); serve CPU per request %s (quiet %s), read system calls per request %.1f (quiet %.1f), %.0f goroutines (quiet %.0f), %.0f GCs (quiet %.0f)",
		r.Rate, fmtDur(r.Flood.P50), fmtDur(r.Flood.P99), r.Flood.CodesString(), r.MemDuring.RSS>>20, r.MemDuring.HWM>>20,
		fmtDur(r.FloodServe.CPUPerRequest), fmtDur(r.QuietServe.CPUPerRequest), r.FloodServe.ReadsPerRequest, r.QuietServe.ReadsPerRequest, r.FloodServe.Goroutines, r.QuietServe.Goroutines, r.FloodServe.GCs, r.QuietServe.GCs)
	return nil
}

// floodProc is a running bench-flood.
type floodProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	setUp time.Duration
	done  bool
}

// startFlood builds and starts bench-flood against 127.0.0.1:port and
// waits until its connections are open.
func (e *env) startFlood(ctx context.Context, port int, r *StormResult, caCert, path string) (*floodProc, error) {
	bin := filepath.Join(e.tmp, "bench-flood")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/bench-flood")
	build.Dir = e.cfg.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench-flood: %w\n%s", err, out)
	}
	args := []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--silent", strconv.Itoa(r.Silent),
		"--slowloris", strconv.Itoa(r.Slowloris), "--sources", strconv.Itoa(r.Sources), "--path", path}
	if caCert != "" {
		args = append(args, "--ca", caCert)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &floodProc{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !f.out.Scan() {
		_, _ = f.stop()
		return nil, fmt.Errorf("bench-flood ended before its flood was open (its errors are above)")
	}
	d, ok := strings.CutPrefix(f.out.Text(), "ready ")
	if f.setUp, err = time.ParseDuration(d); !ok || err != nil {
		_, _ = f.stop()
		return nil, fmt.Errorf("bench-flood: unexpected %q", f.out.Text())
	}
	return f, nil
}

// stop ends the flood and returns how many of its connections the server
// had closed.
func (f *floodProc) stop() (int, error) {
	if f.done {
		return 0, nil
	}
	f.done = true
	_ = f.stdin.Close()
	closed := 0
	for f.out.Scan() {
		if n, ok := strings.CutPrefix(f.out.Text(), "closed "); ok {
			closed, _ = strconv.Atoi(n)
		}
	}
	if err := f.cmd.Wait(); err != nil {
		return closed, fmt.Errorf("bench-flood: %w", err)
	}
	return closed, nil
}
