// Package proc starts the processes a benchmark run needs and stops every
// one of them again: each child runs in its own process group, is asked to
// die with its parent (Pdeathsig), and Group.StopAll signals the groups in
// reverse start order, then SIGKILLs whatever outlives its grace period. A
// run that fails half-way or is interrupted with Ctrl-C leaves nothing
// behind.
//
// It also reads what /proc says about those processes: memory (VmRSS,
// VmHWM), children and start times.
//
// It imports nothing from plumbline.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says how to stop a process.
type Options struct {
	// StopSignal asks the process to stop (zero: SIGTERM).
	StopSignal syscall.Signal
	// Grace is how long it gets after StopSignal before SIGKILL (zero: 5 s).
	Grace time.Duration
	// DeathSignal is sent by the kernel if the harness dies first (zero:
	// SIGKILL). Use SIGTERM for a process that must stop its own children.
	DeathSignal syscall.Signal
	// AfterStop runs once the process has exited, e.g. to stop processes it
	// started in process groups of their own.
	AfterStop func()
}

// Proc is one started process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// LogPath is the file that receives its stdout and stderr.
	LogPath string

	opts     Options
	done     chan struct{}
	waitErr  error // set before done is closed
	stopOnce sync.Once
}

// Group owns the processes of one run.
type Group struct {
	logDir string

	mu    sync.Mutex // protects procs
	procs []*Proc
}

// NewGroup returns a group whose processes log to files in logDir.
func NewGroup(logDir string) *Group { return &Group{logDir: logDir} }

// Start starts cmd in its own process group, with stdout and stderr going
// to <logDir>/<name>.log unless cmd already has them set.
func (g *Group) Start(name string, cmd *exec.Cmd, opts Options) (*Proc, error) {
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.DeathSignal == 0 {
		opts.DeathSignal = syscall.SIGKILL
	}
	p := &Proc{Name: name, Cmd: cmd, opts: opts, done: make(chan struct{})}
	var logFile *os.File
	if cmd.Stdout == nil && cmd.Stderr == nil {
		p.LogPath = g.logDir + "/" + sanitize(name) + ".log"
		f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = opts.DeathSignal
	err := cmd.Start()
	if logFile != nil {
		logFile.Close() // the child has its own descriptor
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p, nil
}

// Pid is the process id (and process group id).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err is how the process ended; valid once Exited is closed.
func (p *Proc) Err() error { return p.waitErr }

// Stop sends the stop signal to the process group, waits up to the grace
// period, then SIGKILLs the group. It is safe to call more than once.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		pgid := p.Pid()
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-pgid, p.opts.StopSignal)
			select {
			case <-p.done:
			case <-time.After(p.opts.Grace):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.done
			}
		}
		// The leader is gone; members of its group that outlived it (a
		// shell's child, say) still carry the group id.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if p.opts.AfterStop != nil {
			p.opts.AfterStop()
		}
	})
}

// LogTail returns the last n bytes of the process's log.
func (p *Proc) LogTail(n int) string {
	if p.LogPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// StopAll stops every process of the group, the last started first.
func (g *Group) StopAll() {
	g.mu.Lock()
	procs := append([]*Proc(nil), g.procs...)
	g.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
}

// ExitError describes a process that exited while it was expected to run.
func ExitError(p *Proc) error {
	return fmt.Errorf("%s (pid %d) exited: %v; last log lines:\n%s", p.Name, p.Pid(), p.Err(), p.LogTail(2000))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitTCP waits until addr accepts connections, the process exits or the
// timeout passes.
func WaitTCP(p *Proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.Exited():
			return ExitError(p)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s: %w", p.Name, addr, timeout, err)
		}
	}
}

// KillGroupIfSame SIGKILLs process group pgid if its leader pid is still
// the process that started at startTime (field 22 of /proc/<pid>/stat), so
// that a reused pid is never touched. It reports whether it sent a signal.
func KillGroupIfSame(pgid int, startTime uint64) bool {
	st, err := ReadStat(pgid)
	if err != nil || st.StartTime != startTime || st.State == "Z" {
		return false
	}
	return syscall.Kill(-pgid, syscall.SIGKILL) == nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// ErrGone is returned for a process that no longer exists.
var ErrGone = errors.New("process is gone")
