// Command gateway-profile shows where the gateway's CPU goes per request:
// it runs the gateway in-process as `plumbline serve` configures it, in
// front of two bench-backend processes, drives it with wrk, and prints a
// CPU profile by category with microseconds per request, plus allocations
// per request (bench/internal/gwprofile).
//
//	go run ./bench/cmd/gateway-profile [-https=false] [-seconds 8] [-conns 64]
//	go run ./bench/cmd/gateway-profile -ab [-rounds 3] [-seconds 4]
//
// -ab compares, over plain HTTP, net/http's server with the gateway's own
// HTTP/1.1 loop (serve --http1 fast): rounds of one run each, taken in
// turn (the order alternating), then each figure's median and the ratio.
//
// It needs wrk. Run it on a quiet machine for absolute figures; the shares
// and allocation counts hold on a busy one.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/gwprofile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	https := flag.Bool("https", true, "profile over HTTPS (the default of plumbline serve) and over plain HTTP; false: plain HTTP only")
	seconds := flag.Int("seconds", 8, "length of the profiled wrk run")
	conns := flag.Int("conns", 64, "wrk connections")
	backend := flag.String("backend", "", "bench-backend binary (default: build bench/cmd/bench-backend)")
	wrk := flag.String("wrk", "wrk", "wrk binary")
	keep := flag.String("cpuprofile", "", "also write the raw CPU profiles here (PREFIX-http.pprof, PREFIX-https.pprof; with -ab PREFIX-std-N.pprof, PREFIX-h1-N.pprof) for go tool pprof")
	ab := flag.Bool("ab", false, "compare net/http's server with the h1 loop (serve --http1 fast) over plain HTTP, in turn")
	rounds := flag.Int("rounds", 3, "with -ab: runs of each")
	flag.Parse()
	var err error
	if *ab {
		err = runAB(ctx, *rounds, *seconds, *conns, *backend, *wrk, *keep)
	} else {
		err = run(ctx, *https, *seconds, *conns, *backend, *wrk, *keep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway-profile:", err)
		os.Exit(1)
	}
}

// setup makes the run's temporary folder (the caller removes it), builds
// bench-backend there if backend is empty and finds wrk.
func setup(ctx context.Context, backend, wrk string) (tmp, backendBin, wrkBin string, err error) {
	if tmp, err = os.MkdirTemp("", "gateway-profile-"); err != nil {
		return "", "", "", err
	}
	if backend == "" {
		backend = filepath.Join(tmp, "bench-backend")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", backend, "./bench/cmd/bench-backend").CombinedOutput(); err != nil {
			return tmp, "", "", fmt.Errorf("build bench-backend (run from the repository root): %w\n%s", err, out)
		}
	}
	if wrkBin, err = exec.LookPath(wrk); err != nil {
		return tmp, "", "", fmt.Errorf("wrk not found (Debian: apt-get install wrk): %w", err)
	}
	return tmp, backend, wrkBin, nil
}

// runAB runs net/http's server and the h1 loop in turn, rounds times each.
func runAB(ctx context.Context, rounds, seconds, conns int, backend, wrk, keep string) error {
	tmp, backend, wrk, err := setup(ctx, backend, wrk)
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		return err
	}
	var std, fast []*gwprofile.Result
	for i := range max(1, rounds) {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, f := range order {
			dir := filepath.Join(tmp, fmt.Sprintf("%d-%v", i, f))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			cfg := gwprofile.Config{Backend: backend, Wrk: wrk, Fast: f, Conns: conns,
				Duration: time.Duration(seconds) * time.Second, TempDir: dir, Log: os.Stderr}
			if keep != "" {
				cfg.KeepProfile = fmt.Sprintf("%s-%s-%d.pprof", keep, map[bool]string{false: "std", true: "h1"}[f], i)
			}
			r, err := gwprofile.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if f {
				fast = append(fast, r)
			} else {
				std = append(std, r)
			}
		}
	}
	fmt.Print(gwprofile.ABMarkdown(std, fast))
	fmt.Println()
	fmt.Print(gwprofile.Markdown([]*gwprofile.Result{std[len(std)-1], fast[len(fast)-1]}))
	return nil
}

func run(ctx context.Context, https bool, seconds, conns int, backend, wrk, keep string) error {
	tmp, backend, wrk, err := setup(ctx, backend, wrk)
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		return err
	}
	var runs []*gwprofile.Result
	modes := []bool{false}
	if https {
		modes = append(modes, true)
	}
	for _, tls := range modes {
		dir := filepath.Join(tmp, fmt.Sprint(tls))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		cfg := gwprofile.Config{Backend: backend, Wrk: wrk, HTTPS: tls, Conns: conns,
			Duration: time.Duration(seconds) * time.Second, TempDir: dir, Log: os.Stderr}
		if keep != "" {
			cfg.KeepProfile = keep + map[bool]string{false: "-http.pprof", true: "-https.pprof"}[tls]
		}
		r, err := gwprofile.Run(ctx, cfg)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	fmt.Print(gwprofile.Markdown(runs))
	return nil
}
