package rworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/plumbline/plumbline/internal/plumber"
)

// Main runs `plumbline rworker ARGS` and returns the exit status. The
// process driver starts it as the instance's process: its stdout and stderr
// are the instance log. SIGTERM or SIGINT stops it gracefully.
//
// When the loaded session finds what the lean runtime cannot serve, Main
// replaces itself (execve, same pid and process group) with plumber's own
// server, as plumbline's launcher runs it, and logs why.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseArgs(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "rworker")
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procsFor(cfg.Workers, runtime.NumCPU()))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := New(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "plumbline rworker:", err)
		return 2
	}
	err = s.Run(ctx)
	var unsupported *UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		fmt.Fprintf(stderr, "plumbline: %v; serving it with plumber's own server instead\n", err)
		return execPlumber(cfg, stderr)
	case err != nil:
		fmt.Fprintln(stderr, "plumbline rworker:", err)
		return 1
	}
	return 0
}

// procsFor is how many threads run the supervisor's Go code at once for a
// pool of workers on a machine of cpus. The supervisor only moves bytes
// between sockets and pipes while R computes: one thread does that for
// several workers, and one instead of every CPU halves the thread hand-offs
// (context switches) and the supervisor's CPU time per request, measured in
// docs/runtime.md. Larger pools get a thread per 8 workers.
func procsFor(workers, cpus int) int {
	n := (max(workers, 1) + 7) / 8
	return max(1, min(n, cpus))
}

// execPlumber replaces this process with plumbline's launcher for plumber's
// own server on the same address. It returns only if that fails.
func execPlumber(cfg Config, stderr io.Writer) int {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	rscript, err := exec.LookPath(cfg.withDefaults().Rscript)
	if err != nil {
		fmt.Fprintln(stderr, "plumbline rworker: cannot run R:", err)
		return 1
	}
	env := append(os.Environ(), "PORT="+port)
	err = syscall.Exec(rscript, []string{rscript, "-e", plumber.Launcher(host)}, env)
	fmt.Fprintln(stderr, "plumbline rworker: start plumber's own server:", err)
	return 1
}
