package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/datadir"
)

// connectOrStart connects to the configured server; when none is configured
// and none runs for the data dir, it starts `plumbline serve` in the
// background (its log in <data-dir>/serve.log) and waits until it answers.
// started reports whether it did. serveArgs are extra flags for the
// server it starts (--driver docker).
func (g *globals) connectOrStart(ctx context.Context, listen string, serveArgs ...string) (cn *conn, started bool, err error) {
	if _, err := g.useWorkspace(); err != nil {
		return nil, false, err
	}
	explicit := g.server != "" || os.Getenv(envServer) != ""
	cn, err = g.connect()
	if err == nil {
		var info *api.ServerInfo
		if info, err = cn.api.ServerInfo(ctx); err == nil {
			if listen != "" {
				fmt.Fprintf(g.stderr, "A plumbline server already runs (%s): --listen %s applies only to a server up starts; stop this one first (plumbline stop) to change the address\n", info.ScoringBaseURL, listen)
			}
			return cn, false, nil
		}
		if explicit {
			return nil, false, explainConnErr(err, cn.api.BaseURL())
		}
	} else if explicit {
		return nil, false, err
	}
	dd, err := datadir.Open(g.dataDirPath())
	if err != nil {
		return nil, false, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, false, err
	}
	logPath := filepath.Join(dd.Root, "serve.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, false, err
	}
	defer logf.Close()
	if st, err := dd.ReadServerState(); err == nil {
		if st.PID > 0 && syscall.Kill(st.PID, 0) == nil {
			return nil, false, fmt.Errorf("a plumbline server (pid %d) runs for data dir %s but does not answer at %s; see its log %s", st.PID, dd.Root, st.URL, filepath.Join(dd.Root, "serve.log"))
		}
		_ = os.Remove(dd.ServerStatePath()) // left by a server that was killed
	}
	// A background server for local work stops its instances when it is
	// stopped (plumbline stop, down --stop-server): nothing is left running
	// behind the user's back. up brings them back in seconds.
	args := []string{"serve", "--data-dir", dd.Root, "--on-exit", "stop"}
	if listen != "" {
		args = append(args, "--listen", listen)
	}
	args = append(args, serveArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("start a local server: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(g.stderr, "Started a local plumbline server in the background (pid %d, log %s)\n", pid, logPath)

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			tail, _ := os.ReadFile(logPath)
			return nil, false, fmt.Errorf("the local server exited (%v); its log %s ends with:\n%s", err, logPath, lastLines(string(tail), 10))
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if st, err := dd.ReadServerState(); err == nil && st.PID == pid {
			if cn, err = g.connect(); err == nil {
				if _, err = cn.api.ServerInfo(ctx); err == nil {
					return cn, true, nil
				}
			}
		}
	}
	return nil, false, errors.New("the local server did not answer within 30s; see " + logPath)
}

func lastLines(s string, n int) string {
	lines := splitLines(s)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += "  " + l + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
