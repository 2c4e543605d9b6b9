package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/datadir"
)

func newStopCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "stop",
		Short: "Stop the plumbline server of the data dir (the one 'up' started in the background)",
		Long: `Stop the plumbline server that runs for the data dir: the one 'plumbline up' started in the
background, or a 'plumbline serve' running elsewhere on this machine. It drains as on Ctrl-C:
requests in flight finish (up to 30 s). The server 'up' starts stops its instances too; a
'plumbline serve' does what its --on-exit says (by default it leaves them running for its next
start to re-adopt). Everything is kept in the data dir; the next 'plumbline up' or 'plumbline
serve' starts the deployments again.`,
		Example: "  plumbline stop\n  plumbline down examples/r-iris --stop-server",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return g.stopServer(c.Context(), timeout)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the server to drain and exit")
	return c
}

// stopServer sends SIGTERM to the data dir's server and waits until it has
// exited. No server running is not an error.
func (g *globals) stopServer(ctx context.Context, timeout time.Duration) error {
	dd, err := datadir.Open(g.dataDirPath())
	if err != nil {
		return err
	}
	pid, err := runningServer(dd)
	if err != nil {
		return err
	}
	if pid == 0 {
		fmt.Fprintf(g.stderr, "No plumbline server runs for data dir %s\n", dd.Root)
		return nil
	}
	start := time.Now()
	fmt.Fprintf(g.stderr, "Stopping the plumbline server (pid %d, data dir %s): requests in flight finish, then its instances stop (unless it runs with serve --on-exit keep, which leaves them for the next start to re-adopt)…\n", pid, dd.Root)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop the server (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server (pid %d) is still running after %s; see its log %s (kill -9 %d ends it at once; its instances are then cleaned up at the next start)",
				pid, timeout, filepath.Join(dd.Root, "serve.log"), pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(g.stderr, "Stopped (%.1fs). Deployments are kept: plumbline up or plumbline serve starts them again\n", time.Since(start).Seconds())
	return nil
}

// runningServer returns the pid of the server holding dd's lock, or 0 when
// none runs. server.json names the pid; the data dir's lock and the
// process's command line confirm it, so a pid reused by another program is
// never signalled.
func runningServer(dd *datadir.Dir) (int, error) {
	st, err := dd.ReadServerState()
	if datadir.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if st.PID <= 0 || !alive(st.PID) {
		return 0, nil
	}
	if !dataDirLocked(dd) {
		return 0, nil // the lock is free: whoever has that pid now is not a server of dd
	}
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID)); err == nil {
		if !strings.Contains(string(cmd), "serve") {
			return 0, fmt.Errorf("server.json in %s names pid %d, which is not a plumbline server (%s); remove the stale file", dd.Root, st.PID, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return st.PID, nil
}

// dataDirLocked reports whether a server holds dd's lock.
func dataDirLocked(dd *datadir.Dir) bool {
	f, err := os.OpenFile(filepath.Join(dd.Root, "lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// alive reports whether a process with pid exists (and is not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
