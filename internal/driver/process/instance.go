package process

import (
	"fmt"
	"golang.org/x/sys/unix"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

// instance is one running (or exited, not yet stopped) server process and
// its process group.
type instance struct {
	id        string
	dir       string // StateDir/instances/<id>
	port      int
	addr      string
	cmd       *exec.Cmd // nil for an instance re-adopted by Recover
	pid       int       // also the process group ID: the leader runs with Setpgid
	startedAt time.Time
	template  string // driver.InstanceSpec.Template

	// reaped is closed once cmd.Wait has returned and the exit fields are
	// set.
	reaped chan struct{}
	// removed is closed when Stop forgets the instance; it ends followers.
	removed chan struct{}

	// stopMu serializes Stop calls for this instance.
	stopMu sync.Mutex

	// mu guards the exit fields below.
	mu       sync.Mutex
	exited   bool
	exitCode int
	exitedAt time.Time
	message  string

	// logMu serializes log rotation, log snapshots taken by readers, and the
	// removal of dir; it guards rotations and gone.
	logMu     sync.Mutex
	rotations int64 // times the live log was copy-truncated
	gone      bool  // dir has been removed
	// rotateFailing is touched by the rotation loop only.
	rotateFailing bool
}

func (in *instance) logPath() string { return filepath.Join(in.dir, "output.log") }

// status reports the instance as the driver sees it now.
func (in *instance) status() driver.Status {
	s := driver.Status{
		ID:        in.id,
		State:     driver.StateRunning,
		Addr:      in.addr,
		Template:  in.template,
		PID:       in.pid,
		StartedAt: in.startedAt,
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.exited {
		s.State = driver.StateExited
		s.ExitCode = in.exitCode
		s.ExitedAt = in.exitedAt
		s.Message = in.message
	}
	return s
}

// reap waits for the group leader to exit and records how it ended. It is
// the only caller of cmd.Wait.
func (in *instance) reap(bindHost string, log *slog.Logger) {
	defer close(in.reaped)
	_ = in.cmd.Wait() // the exit status is read from ProcessState below
	ps := in.cmd.ProcessState
	code := ps.ExitCode()
	msg := fmt.Sprintf("exited with code %d", code)
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = -1
		name := unix.SignalName(ws.Signal()) // "SIGKILL"
		if name == "" {
			name = ws.Signal().String()
		}
		msg = "killed by signal " + name
	}
	// A server that lost the race for its port (see allocPort) exits
	// non-zero with the port now held by someone else. Say so, unless the
	// holder could be a surviving member of the instance's own group.
	if code != 0 && !groupAlive(in.pid) && portTaken(bindHost, in.port) {
		msg += fmt.Sprintf("; port %d is now held by another process: it was probably taken between plumbline choosing it and the server binding it, and a restart picks a new port", in.port)
	}
	in.mu.Lock()
	in.exited = true
	in.exitCode = code
	in.exitedAt = time.Now()
	in.message = msg
	in.mu.Unlock()
	log.Info("instance exited", "instance", in.id, "pid", in.pid, "exit_code", code, "message", msg)
}

// adoptedPoll is how often a re-adopted instance's leader is looked at: it
// is not plumbline's child, so no Wait reports its end.
const adoptedPoll = 200 * time.Millisecond

// watch stands in for reap on an instance re-adopted by Recover. The
// leader's parent is now init (or a subreaper), which reaps it, so its exit
// status cannot be read: the instance reports Exited with code -1 once the
// recorded process (same pid and start time) is gone or a zombie.
func (in *instance) watch(startTime uint64, stop <-chan struct{}, log *slog.Logger) {
	defer close(in.reaped)
	t := time.NewTicker(adoptedPoll)
	defer t.Stop()
	for {
		p, err := readProc(in.pid)
		if err != nil || p.startTime != startTime || p.zombie() {
			break
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
	in.mu.Lock()
	in.exited = true
	in.exitCode = -1
	in.exitedAt = time.Now()
	in.message = "exited; its exit code is unknown: plumbline re-adopted it after a restart and is not its parent"
	in.mu.Unlock()
	log.Info("re-adopted instance exited", "instance", in.id, "pid", in.pid)
}
