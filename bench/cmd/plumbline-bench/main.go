// Command plumbline-bench is plumbline's benchmark harness (issue 7). In one
// run it starts everything itself on loopback — a trivial Go backend, nginx
// with a generated configuration, plumber processes and `plumbline serve`
// from the built binary — measures the gateway hop against nginx and the
// bare backend, plumbline → plumber against plumber alone and nginx, the
// overload behaviour, a rollout under load, deploy time and memory, prints a
// table and writes docs/benchmarks.md with each target met or not.
//
//	make bench          # full run (minutes), writes docs/benchmarks.md
//	make bench-smoke    # every scenario for ~1 s; writes a temporary file
//	go run ./bench/cmd/plumbline-bench -h
//
// The scenarios live in bench/internal/harness; the load generators in
// bench/internal/load; bench/cmd/bench-backend is the Go backend, which the
// harness builds. Everything the harness starts it stops, on success, on
// error and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/harness"
)

func main() {
	// A closed stdout (| head) must not kill the harness before it has
	// stopped what it started: writes fail instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once; children die with us (Pdeathsig)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, runs the harness,
// prints the table to stdout and writes the report. It returns the exit
// code: 0 success, 1 a scenario failed, 2 a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plumbline-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg harness.Config
	var out, only string
	fs.StringVar(&out, "out", "", "report file (default docs/benchmarks.md; with -smoke a temporary file)")
	fs.BoolVar(&cfg.Smoke, "smoke", false, "run every scenario for about a second, once: proves the harness works; the numbers mean nothing")
	fs.StringVar(&cfg.Plumbline, "plumbline", "", "plumbline binary (default $PLUMBLINE_BIN, else bin/plumbline)")
	fs.StringVar(&cfg.Backend, "backend", "", "bench-backend binary (default: build bench/cmd/bench-backend)")
	fs.StringVar(&cfg.LoadGen, "loadgen", "auto", "closed-loop generator for the gateway: wrk, go, or auto (wrk when installed)")
	fs.StringVar(&cfg.Nginx, "nginx", "nginx", "nginx binary")
	fs.StringVar(&cfg.Rscript, "rscript", "Rscript", "Rscript binary")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run: "+strings.Join(harness.Scenarios, ",")+" (default all)")
	fs.IntVar(&cfg.Repeats, "repeats", 0, "runs per variant, reported as medians (default 3; smoke 1)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the variant order (default: from the clock; reported)")
	fs.IntVar(&cfg.Conns, "conns", 0, "closed-loop connections in the gateway scenario (default 64)")
	fs.IntVar(&cfg.GatewayRate, "rate", 0, "fixed rate of the gateway latency runs, requests/s (default 2000)")
	fs.IntVar(&cfg.RolloutRate, "rollout-rate", 0, "constant rate during the rollout, requests/s (default 200)")
	fs.DurationVar(&cfg.GatewayRun, "gateway-run", 0, "length of one gateway run (default 5s)")
	fs.DurationVar(&cfg.RRun, "r-run", 0, "length of one R variant run and of the in-R loop (default 5s)")
	fs.DurationVar(&cfg.OverloadRun, "overload-run", 0, "length of the overload (default 10s)")
	fs.DurationVar(&cfg.RolloutStep, "rollout-step", 0, "hold after each rollout step (default 5s)")
	fs.DurationVar(&cfg.OverloadDelay, "overload-delay", 0, "backend service time in the overload scenario (default 20ms)")
	fs.IntVar(&cfg.StormRate, "storm-rate", 0, "rate of the well-behaved client in the storm scenario, requests/s (default 1000)")
	fs.IntVar(&cfg.StormSilent, "storm-silent", 0, "silent connections in the storm (default 5000; smoke 200)")
	fs.IntVar(&cfg.StormSlowloris, "storm-slowloris", 0, "slowloris clients in the storm (default 200; smoke 20)")
	fs.DurationVar(&cfg.ProfileRun, "profile-run", 0, "length of the gateway's CPU profile per protocol (default 8s)")
	fs.StringVar(&cfg.DockerHost, "docker-host", "", "container engine's Docker API address for the containers scenario (default $DOCKER_HOST, else $PLUMBLINE_TEST_DOCKER_HOST)")
	fs.BoolVar(&cfg.KeepTemp, "keep", false, "keep the temporary folder (logs, nginx configs, data dirs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "plumbline-bench takes no arguments, got %q\n", fs.Args())
		return 2
	}
	if only != "" {
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(harness.Scenarios, s) {
				fmt.Fprintf(stderr, "-only: unknown scenario %q; want some of %s\n", s, strings.Join(harness.Scenarios, ","))
				return 2
			}
			cfg.Only = append(cfg.Only, s)
		}
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "plumbline-bench:", err)
		return 2
	}
	cfg.RepoRoot = root
	if cfg.Plumbline == "" {
		cfg.Plumbline = os.Getenv("PLUMBLINE_BIN")
	}
	if cfg.Plumbline == "" {
		cfg.Plumbline = filepath.Join(root, "bin", "plumbline")
	}
	if out == "" {
		if cfg.Smoke {
			f, err := os.CreateTemp("", "plumbline-bench-smoke-*.md")
			if err != nil {
				fmt.Fprintln(stderr, "plumbline-bench:", err)
				return 1
			}
			f.Close()
			out = f.Name()
		} else {
			out = filepath.Join(root, "docs", "benchmarks.md")
		}
	}
	cfg.Command = command(root, args)
	cfg.Log = stderr

	res, runErr := harness.Run(ctx, cfg)
	if res == nil || len(res.Versions) == 0 {
		// Nothing ran (a tool is missing): no report to write.
		fmt.Fprintln(stderr, "plumbline-bench:", runErr)
		return 1
	}
	fmt.Fprintln(stdout, harness.Text(res))
	if err := os.WriteFile(out, []byte(harness.Markdown(res)), 0o644); err != nil {
		fmt.Fprintln(stderr, "plumbline-bench: write report:", err)
		return 1
	}
	fmt.Fprintf(stdout, "report written to %s (%s)\n", out, res.Elapsed.Round(time.Second))
	if runErr != nil {
		fmt.Fprintln(stderr, "plumbline-bench:", runErr)
		return 1
	}
	return 0
}

// command is the command line to put in the report: what reproduces it,
// from the repository root.
func command(root string, args []string) string {
	var b strings.Builder
	if v := os.Getenv("PLUMBLINE_BIN"); v != "" {
		if rel, err := filepath.Rel(root, v); err == nil && !strings.HasPrefix(rel, "..") {
			v = rel
		}
		b.WriteString("PLUMBLINE_BIN=" + shellQuote(v) + " ")
	}
	b.WriteString("go run ./bench/cmd/plumbline-bench")
	for _, a := range args {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// repoRoot finds the plumbline module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/plumbline/plumbline\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the plumbline repository (no go.mod of github.com/plumbline/plumbline above the working directory)")
		}
		dir = parent
	}
}
