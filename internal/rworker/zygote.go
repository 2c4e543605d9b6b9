package rworker

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/internal/plumber"
)

// leanR is the R side of the runtime: the loaded session and its workers.
//
//go:embed lean.R
var leanR []byte

// UnsupportedError is a plumber API that the loaded session found the lean
// runtime cannot serve (an exit hook, a plumber older than 1.0). Main then
// runs plumber's own server in the supervisor's place.
type UnsupportedError struct {
	Reason string
}

func (e *UnsupportedError) Error() string {
	return "the lean R runtime cannot serve this plumber API: " + e.Reason
}

// session is the loaded R session (the zygote) that workers are forked from.
type session struct {
	cmd      *exec.Cmd
	commands io.WriteCloser // R's stdin: "fork <id>" lines
	events   *os.File       // Dir/zygote.out, R's messages to the supervisor

	exited  chan struct{} // closed once R has exited
	exitErr error         // set before exited is closed

	loaded chan loadInfo // one value when plumber.R is loaded
	// unsupported receives the reason when R finds what it cannot serve.
	unsupported chan string

	// mu guards forks and the writes to commands.
	mu    sync.Mutex
	forks map[string]chan int // worker id → its pid, once R forked it
}

// loadInfo is what the session reports once plumber.R is loaded.
type loadInfo struct {
	RSS        int64  // the session's resident bytes, after a full collection
	MaxRequest int64  // plumber.maxRequestSize; 0: no limit
	Router     string // compiled or call
	// FastPaths are the compiled router's shortcuts in use: "json" when
	// plumber's default JSON serializers are called directly.
	FastPaths []string
}

// startSession writes the R script into dir and starts R on it.
// env is R's environment (the supervisor's own when nil) and workDir its
// working directory ("" for the supervisor's).
func startSession(cfg Config, host, port string, env []string, workDir string, stdout, stderr io.Writer) (*session, error) {
	script := filepath.Join(cfg.Dir, "lean.R")
	// plumbline's R handlers (the error body and request log every R
	// runtime shares) come first; lean.R installs them once plumbed.
	src := append([]byte(plumber.HandlersR+"\n"), leanR...)
	if err := os.WriteFile(script, src, 0o600); err != nil {
		return nil, fmt.Errorf("write the R script: %w", err)
	}
	eventsPath := filepath.Join(cfg.Dir, "zygote.out")
	_ = os.Remove(eventsPath)
	if err := syscall.Mkfifo(eventsPath, 0o600); err != nil {
		return nil, fmt.Errorf("create %s: %w", eventsPath, err)
	}
	// Opened before R starts, and for reading and writing: R's blocking
	// open for writing finds a reader at once, and reads wait for R's
	// lines instead of finding end-of-file before R has opened its end.
	// R's exit is learnt from Wait, not from this pipe.
	events, err := os.OpenFile(eventsPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", eventsPath, err)
	}
	rscript, err := exec.LookPath(cfg.Rscript)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("cannot run R (%s): install it (Debian: apt-get install r-base-core r-cran-plumber): %w", cfg.Rscript, err)
	}
	cmd := exec.Command(rscript, "--no-echo", script)
	if env == nil {
		env = os.Environ()
	}
	cmd.Dir = workDir
	cmd.Env = append(env[:len(env):len(env)],
		"PLUMBLINE_RLEAN_DIR="+cfg.Dir,
		"PLUMBLINE_RLEAN_HOST="+host,
		"PLUMBLINE_RLEAN_PORT="+port,
		"PLUMBLINE_RLEAN_ROUTER="+cfg.Router,
	)
	if cfg.Timing {
		cmd.Env = append(cmd.Env, "PLUMBLINE_RLEAN_TIMING=1")
	}
	if cfg.RprofFile != "" {
		cmd.Env = append(cmd.Env, "PLUMBLINE_RLEAN_RPROF="+cfg.RprofFile)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	commands, err := cmd.StdinPipe()
	if err != nil {
		events.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		events.Close()
		return nil, fmt.Errorf("start R: %w", err)
	}
	s := &session{
		cmd: cmd, commands: commands, events: events,
		exited: make(chan struct{}), loaded: make(chan loadInfo, 1), unsupported: make(chan string, 1),
		forks: map[string]chan int{},
	}
	drained, readerEnded := make(chan struct{}), make(chan struct{})
	go func() {
		s.exitErr = cmd.Wait()
		// What R wrote before it exited is in the pipe ahead of this line;
		// exited closes once readEvents has dispatched it all, so that a
		// select woken by exited finds R's last message (the reason it
		// cannot serve the API, before it quits with status 0).
		// (The first newline ends a line R may have left unfinished.)
		if _, err := io.WriteString(s.events, "\n"+exitedLine+"\n"); err == nil {
			select {
			case <-drained:
			case <-readerEnded: // the pipe failed: nothing more to read
			}
		}
		close(s.exited)
	}()
	go func() {
		defer close(readerEnded)
		s.readEvents(drained)
	}()
	return s, nil
}

// exitedLine is what the supervisor writes into the events pipe once R
// has exited; R never writes it.
const exitedLine = "plumbline-session-exited"

// readEvents dispatches the session's messages until the pipe is closed,
// and closes drained when it reaches exitedLine.
func (s *session) readEvents(drained chan<- struct{}) {
	sc := bufio.NewScanner(s.events)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case exitedLine:
			close(drained)
		case "loaded":
			var li loadInfo
			if len(f) >= 4 {
				rss, _ := strconv.ParseFloat(f[1], 64)
				mx, _ := strconv.ParseFloat(f[2], 64)
				li = loadInfo{RSS: int64(rss), MaxRequest: int64(mx), Router: f[3]}
			}
			if len(f) >= 5 && f[4] != "-" {
				li.FastPaths = strings.Split(f[4], ",")
			}
			select {
			case s.loaded <- li:
			default:
			}
		case "unsupported":
			select {
			case s.unsupported <- strings.TrimSpace(strings.TrimPrefix(sc.Text(), "unsupported")):
			default:
			}
		case "forked", "forkfailed":
			if len(f) >= 2 {
				pid := -1 // forkfailed
				if f[0] == "forked" && len(f) == 3 {
					pid, _ = strconv.Atoi(f[2])
				}
				s.mu.Lock()
				ch := s.forks[f[1]]
				delete(s.forks, f[1])
				s.mu.Unlock()
				if ch != nil {
					ch <- pid
				}
			}
		}
	}
}

// alive reports whether the session still runs.
func (s *session) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// exitReason describes how the session ended.
func (s *session) exitReason() string {
	<-s.exited
	var ee *exec.ExitError
	if errors.As(s.exitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with code %d", ee.ExitCode())
	}
	if s.exitErr != nil {
		return s.exitErr.Error()
	}
	return "exited with code 0"
}

// requestFork asks the session to fork worker id; the returned channel gets
// the worker's pid once R forked it.
func (s *session) requestFork(id string) (<-chan int, error) {
	ch := make(chan int, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forks[id] = ch
	if _, err := io.WriteString(s.commands, "fork "+id+"\n"); err != nil {
		delete(s.forks, id)
		return nil, fmt.Errorf("ask the R session to fork: %w", err)
	}
	return ch, nil
}

// stop ends the session: its stdin closes (R quits), then SIGKILL after
// grace.
func (s *session) stop(grace time.Duration) {
	s.mu.Lock()
	s.commands.Close()
	s.mu.Unlock()
	select {
	case <-s.exited:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.events.Close()
}
