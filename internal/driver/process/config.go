package process

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

// Config configures the process driver. The zero value of every field but
// StateDir is a working default.
type Config struct {
	// StateDir holds one folder per instance with its log files and the
	// record Recover reads after a crash. Required: New fails when it is
	// empty. One running driver owns it at a time (New locks it), so two
	// plumbline servers on one machine need two state dirs.
	StateDir string
	// Rscript is the R front end that runs plumber instances, a path or a
	// name looked up on PATH. Zero: "Rscript".
	Rscript string
	// BindHost is the address every instance listens on. Zero: "127.0.0.1",
	// so instances are reachable through the gateway only.
	BindHost string
	// LogMaxBytes is the size past which an instance's live log is rotated.
	// Zero: 10 MiB.
	LogMaxBytes int64
	// LogFiles is how many rotated log files are kept per instance, besides
	// the live one. Zero: 3.
	LogFiles int
	// LogCheckInterval is how often the rotation loop looks at log sizes, so
	// a log can outgrow LogMaxBytes by what the server writes in that time.
	// Zero: 1s.
	LogCheckInterval time.Duration
	// PassEnv names variables of plumbline's own environment that instances
	// inherit besides the basics (PATH, HOME, USER, LOGNAME, SHELL, LANG,
	// LANGUAGE, LC_*, TZ, TMPDIR, R_LIBS, R_LIBS_USER, R_LIBS_SITE), for
	// example LD_LIBRARY_PATH. Zero: the basics only; nothing else of
	// plumbline's environment, which may hold secrets, reaches an instance.
	PassEnv []string
	// RunAs, if set, is the unprivileged user every instance runs as (the
	// server must be root to switch users): its uid and gid, no
	// supplementary groups, HOME, USER and LOGNAME set to it. An instance
	// whose code or model folder that user cannot reach fails to start,
	// saying which folder blocks it. Zero: instances run as the server's
	// own user and can read whatever it can (see docs/security.md).
	RunAs *RunAs
	// Logger receives the driver's own events. Zero: slog.Default().
	Logger *slog.Logger
	// Self is the plumbline executable, which runs the lean R runtime's
	// supervisor (`plumbline rworker`) for instances with RWorkers set.
	// Zero: the running program (os.Executable).
	Self string
}

// self returns the executable that runs `plumbline rworker`.
func (c Config) self() (string, error) {
	if c.Self != "" {
		return findExecutable(c.Self, "")
	}
	return os.Executable()
}

// Defaults, in one place.
const (
	defaultRscript          = "Rscript"
	defaultBindHost         = "127.0.0.1"
	defaultLogMaxBytes      = 10 << 20
	defaultLogFiles         = 3
	defaultLogCheckInterval = time.Second
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Rscript == "" {
		c.Rscript = defaultRscript
	}
	if c.BindHost == "" {
		c.BindHost = defaultBindHost
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = defaultLogMaxBytes
	}
	if c.LogFiles == 0 {
		c.LogFiles = defaultLogFiles
	}
	if c.LogCheckInterval == 0 {
		c.LogCheckInterval = defaultLogCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate names the first field that is wrong and how to fix it.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "":
		return errors.New("process driver: StateDir is required: set it to a folder plumbline owns, e.g. <data dir>/process")
	case c.LogMaxBytes < 0:
		return fmt.Errorf("process driver: LogMaxBytes is %d: use a positive size, or 0 for 10 MiB", c.LogMaxBytes)
	case c.LogFiles < 0:
		return fmt.Errorf("process driver: LogFiles is %d: use a positive count, or 0 for 3", c.LogFiles)
	case c.LogCheckInterval < 0:
		return fmt.Errorf("process driver: LogCheckInterval is %s: use a positive duration, or 0 for 1s", c.LogCheckInterval)
	case c.BindHost != "" && net.ParseIP(c.BindHost) == nil && c.BindHost != "localhost":
		return fmt.Errorf("process driver: BindHost %q is not an IP address: use e.g. 127.0.0.1 or 0.0.0.0", c.BindHost)
	}
	return nil
}

// dialHost is the host to reach instances at: BindHost, or loopback when
// instances listen on every interface.
func (c Config) dialHost() string {
	if ip := net.ParseIP(c.BindHost); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return c.BindHost
}
