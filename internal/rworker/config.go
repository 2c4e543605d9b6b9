package rworker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// Command is the plumbline subcommand that runs a supervisor. It is not
// listed in `plumbline --help`: the process driver runs it.
const Command = "rworker"

// Config configures a supervisor. Listen and Dir are required; the zero value
// of every other field is a working default.
type Config struct {
	// Listen is the host:port the supervisor serves HTTP on: probes, and
	// requests for the plumber API.
	Listen string
	// Dir is the supervisor's private folder (mode 0700, created): the R
	// script, the named pipes and the control socket.
	Dir string
	// Rscript is the R front end, a path or a name on PATH. Zero: "Rscript".
	Rscript string
	// Workers is how many R workers serve requests at once. Zero: 1.
	Workers int
	// MaxRequests recycles a worker after it served this many requests.
	// Zero: never.
	MaxRequests int
	// MaxMemoryBytes recycles a worker whose resident memory passed it,
	// after the request that grew it. Zero: twice the loaded session's
	// resident memory plus 1 GiB.
	MaxMemoryBytes int64
	// RequestTimeout bounds one request: past it (plus a half-second grace,
	// so that the gateway's own 408 reaches the client first) the worker is
	// killed and forked again, and the request gets a 504. Zero: 5 s, Azure's
	// request_timeout_ms default.
	RequestTimeout time.Duration
	// LivenessPath and ReadinessPath are the deployment's probe routes: GETs
	// of them are answered by the supervisor from the workers' state, after
	// the user's own routes passed once at start-up. Zero: no probe route.
	LivenessPath  string
	ReadinessPath string
	// Router is "compiled" (plumber's routing steps compiled once per
	// worker) or "call" (every request through pr$call()). Zero: compiled.
	Router string
	// Timing makes every answer carry a Server-Timing header with where
	// its time went, stage by stage, in the supervisor and in the R worker
	// (a diagnostic: the benchmarks read it). Zero: off.
	Timing bool
	// RprofFile, when set, makes each worker profile itself with R's
	// Rprof (0.5 ms interval) into RprofFile.<worker id> (a diagnostic).
	RprofFile string
	// Logger receives the supervisor's own events. Zero: text to stderr.
	Logger *slog.Logger
}

// Defaults, in one place.
const (
	defaultRscript        = "Rscript"
	defaultWorkers        = 1
	defaultRequestTimeout = 5 * time.Second
	timeoutGrace          = 500 * time.Millisecond
	// MaxWorkers bounds Workers: each is an R process.
	MaxWorkers = 256
)

func (c Config) withDefaults() Config {
	if c.Rscript == "" {
		c.Rscript = defaultRscript
	}
	if c.Workers == 0 {
		c.Workers = defaultWorkers
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.Router == "" {
		c.Router = "compiled"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate names the first field that is wrong and how to fix it.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("rworker: --listen is required: the host:port to serve on, e.g. 127.0.0.1:8000")
	case c.Dir == "":
		return errors.New("rworker: --dir is required: a private folder for the named pipes, e.g. <instance dir>/rworker")
	case !filepath.IsAbs(c.Dir):
		return fmt.Errorf("rworker: --dir %q is relative: give an absolute path", c.Dir)
	case c.Workers < 0 || c.Workers > MaxWorkers:
		return fmt.Errorf("rworker: --workers is %d: use 1 to %d (0 for 1)", c.Workers, MaxWorkers)
	case c.MaxRequests < 0:
		return fmt.Errorf("rworker: --max-requests is %d: use a positive count, or 0 for never", c.MaxRequests)
	case c.MaxMemoryBytes < 0:
		return fmt.Errorf("rworker: --max-memory is %d: use a positive byte count, or 0 for the default", c.MaxMemoryBytes)
	case c.RequestTimeout < 0:
		return fmt.Errorf("rworker: --request-timeout is %s: use a positive duration, or 0 for 5s", c.RequestTimeout)
	case c.Router != "" && c.Router != "compiled" && c.Router != "call":
		return fmt.Errorf("rworker: --router is %q: use compiled or call", c.Router)
	case c.RprofFile != "" && !filepath.IsAbs(c.RprofFile):
		return fmt.Errorf("rworker: --rprof %q is relative: give an absolute path", c.RprofFile)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("rworker: --listen %q is not host:port: %v", c.Listen, err)
	}
	return nil
}

// Args returns the command line (after the program name) that runs a
// supervisor with c: Command and its flags. ParseArgs reads it back.
func (c Config) Args() []string {
	args := []string{Command, "--listen", c.Listen, "--dir", c.Dir}
	if c.Rscript != "" {
		args = append(args, "--rscript", c.Rscript)
	}
	if c.Workers != 0 {
		args = append(args, "--workers", strconv.Itoa(c.Workers))
	}
	if c.MaxRequests != 0 {
		args = append(args, "--max-requests", strconv.Itoa(c.MaxRequests))
	}
	if c.MaxMemoryBytes != 0 {
		args = append(args, "--max-memory", strconv.FormatInt(c.MaxMemoryBytes, 10))
	}
	if c.RequestTimeout != 0 {
		args = append(args, "--request-timeout", c.RequestTimeout.String())
	}
	if c.LivenessPath != "" {
		args = append(args, "--liveness-path", c.LivenessPath)
	}
	if c.ReadinessPath != "" {
		args = append(args, "--readiness-path", c.ReadinessPath)
	}
	if c.Router != "" {
		args = append(args, "--router", c.Router)
	}
	if c.Timing {
		args = append(args, "--timing")
	}
	if c.RprofFile != "" {
		args = append(args, "--rprof", c.RprofFile)
	}
	return args
}

// ParseArgs reads the flags Args writes (without Command itself).
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("plumbline "+Command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "", "host:port to serve on")
	fs.StringVar(&c.Dir, "dir", "", "private folder for the named pipes and the control socket")
	fs.StringVar(&c.Rscript, "rscript", "", "R front end (default Rscript)")
	fs.IntVar(&c.Workers, "workers", 0, "R workers (default 1)")
	fs.IntVar(&c.MaxRequests, "max-requests", 0, "recycle a worker after this many requests (default never)")
	fs.Int64Var(&c.MaxMemoryBytes, "max-memory", 0, "recycle a worker past this resident size in bytes (default 2 × the loaded session + 1 GiB)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 0, "kill a worker whose request runs longer (default 5s)")
	fs.StringVar(&c.LivenessPath, "liveness-path", "", "liveness probe route answered by the supervisor")
	fs.StringVar(&c.ReadinessPath, "readiness-path", "", "readiness probe route answered by the supervisor")
	fs.StringVar(&c.Router, "router", "", "compiled or call (default compiled)")
	fs.BoolVar(&c.Timing, "timing", false, "answer a Server-Timing header with each stage of every request (diagnostic)")
	fs.StringVar(&c.RprofFile, "rprof", "", "profile each worker with Rprof into this file + .<worker id> (diagnostic)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("rworker: unexpected arguments %q", fs.Args())
	}
	return c, c.Validate()
}
