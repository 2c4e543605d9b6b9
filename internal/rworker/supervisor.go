package rworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// forkTimeout bounds one fork, from the command to the worker's hello.
const forkTimeout = 30 * time.Second

// Supervisor serves one instance of a plumber API on the lean runtime.
type Supervisor struct {
	cfg        Config
	log        *slog.Logger
	host, port string
	stdout     io.Writer
	stderr     io.Writer
	// env and workDir are R's environment and working directory; nil and ""
	// mean the supervisor's own (tests set them).
	env     []string
	workDir string

	sess *session
	info loadInfo
	// maxMemory is the recycling bound in bytes (Config or the default).
	maxMemory int64

	// ready is set once the user's probe routes passed at start-up.
	ready atomic.Bool

	idle chan *worker // workers waiting for a request
	wake chan struct{}

	// mu guards workers, want, forking, seq and the fork figures.
	mu       sync.Mutex
	workers  map[string]*worker
	want     int
	forking  int
	seq      int
	forks    int
	lastFork time.Duration
	// resized is closed and replaced whenever a fork ends or a worker
	// leaves, so that Resize can wait for the pool to reach its size.
	resized chan struct{}

	replaced  atomic.Int64 // workers replaced after a crash or a timeout
	recycled  atomic.Int64 // workers replaced by MaxRequests or MaxMemory
	stopping  atomic.Bool
	framePool sync.Pool
}

// New checks cfg and returns a supervisor; Run starts it. stdout and stderr
// receive R's output (the instance log).
func New(cfg Config, stdout, stderr io.Writer) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	host, port, _ := net.SplitHostPort(cfg.Listen)
	return &Supervisor{
		cfg: cfg, log: cfg.Logger, host: host, port: port, stdout: stdout, stderr: stderr,
		idle: make(chan *worker, MaxWorkers), wake: make(chan struct{}, 1),
		workers: map[string]*worker{}, want: cfg.Workers, resized: make(chan struct{}),
	}, nil
}

// Run loads plumber.R in R, forks the workers and serves until ctx ends
// (then it stops gracefully) or the loaded session dies. It returns an
// *UnsupportedError when the session finds what the lean runtime cannot
// serve, before it listens.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.Dir, err)
	}
	if err := os.Chmod(s.cfg.Dir, 0o700); err != nil {
		return err
	}
	started := time.Now()
	sess, err := startSession(s.cfg, s.host, s.port, s.env, s.workDir, s.stdout, s.stderr)
	if err != nil {
		return err
	}
	s.sess = sess
	defer s.shutdown()

	select {
	case s.info = <-sess.loaded:
	case reason := <-sess.unsupported:
		return &UnsupportedError{Reason: reason}
	case <-sess.exited:
		select {
		case reason := <-sess.unsupported:
			return &UnsupportedError{Reason: reason}
		default:
		}
		return fmt.Errorf("the R session %s while loading plumber.R (its messages are above)", sess.exitReason())
	case <-ctx.Done():
		return nil
	}
	s.maxMemory = s.cfg.MaxMemoryBytes
	if s.maxMemory == 0 {
		s.maxMemory = 2*s.info.RSS + 1<<30
	}
	s.log.Info("plumber.R loaded", "took", time.Since(started).Round(time.Millisecond), "session_rss", s.info.RSS,
		"router", s.info.Router, "fast_paths", strings.Join(s.info.FastPaths, ","), "workers", s.cfg.Workers)

	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	// The control socket is for operators and benchmarks: serving goes on
	// without it.
	if ctl, err := s.serveControl(); err != nil {
		s.log.Warn("no control socket", "err", err)
	} else {
		defer ctl.Close()
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.keep(runCtx)
	go s.startupChecks(runCtx)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var result error
	select {
	case <-ctx.Done():
	case <-sess.exited:
		result = fmt.Errorf("the loaded R session %s; the instance stops so that it is started again", sess.exitReason())
	case err := <-serveErr:
		result = fmt.Errorf("serve on %s: %w", s.cfg.Listen, err)
	}
	s.stopping.Store(true)
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), s.cfg.RequestTimeout+timeoutGrace)
	_ = srv.Shutdown(shutCtx)
	done()
	return result
}

// shutdown ends every worker and the session.
func (s *Supervisor) shutdown() {
	s.stopping.Store(true)
	s.mu.Lock()
	ws := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.retire()
	}
	if s.sess != nil {
		s.sess.stop(2 * time.Second)
	}
	for _, w := range ws {
		w.kill()
	}
}

// keep forks workers until the pool has its size, one at a time, and
// again whenever a worker leaves.
func (s *Supervisor) keep(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		s.mu.Lock()
		need := s.want - len(s.workers) - s.forking
		if need > 0 {
			s.forking++
			s.seq++
		}
		id := "w" + strconv.Itoa(s.seq)
		s.mu.Unlock()
		if need <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		t0 := time.Now()
		fctx, cancel := context.WithTimeout(ctx, forkTimeout)
		w, err := forkWorker(fctx, s.sess, s.cfg.Dir, id)
		cancel()
		took := time.Since(t0)
		s.mu.Lock()
		s.forking--
		if err == nil {
			s.workers[id] = w
			s.forks++
			s.lastFork = took
		}
		close(s.resized)
		s.resized = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil || !s.sess.alive() {
				return
			}
			s.log.Warn("fork a worker", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		s.log.Debug("worker ready", "worker", id, "pid", w.pid, "fork", took)
		s.idle <- w
	}
}

// poke wakes the keeper.
func (s *Supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop removes a worker from the pool (it was killed or retired) and lets
// the keeper replace it.
func (s *Supervisor) drop(w *worker) {
	s.mu.Lock()
	delete(s.workers, w.id)
	close(s.resized)
	s.resized = make(chan struct{})
	s.mu.Unlock()
	s.poke()
}

// acquire takes an idle worker, waiting for one until ctx ends.
func (s *Supervisor) acquire(ctx context.Context) (*worker, error) {
	for {
		select {
		case w := <-s.idle:
			if w.gone.Load() {
				continue
			}
			return w, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.sess.exited:
			return nil, errors.New("the loaded R session has exited")
		}
	}
}

// release gives a worker back after a request it answered, or replaces it
// when it served MaxRequests, outgrew the memory bound, or the pool is
// smaller now.
func (s *Supervisor) release(w *worker) {
	why := ""
	switch {
	case s.cfg.MaxRequests > 0 && w.requests.Load() >= int64(s.cfg.MaxRequests):
		why = "served " + strconv.Itoa(s.cfg.MaxRequests) + " requests"
	case s.maxMemory > 0:
		if r := w.rss(); r > s.maxMemory {
			why = fmt.Sprintf("resident memory %d MiB passed %d MiB", r>>20, s.maxMemory>>20)
		}
	}
	if why == "" {
		s.mu.Lock()
		shrink := len(s.workers) > s.want
		s.mu.Unlock()
		if !shrink {
			s.idle <- w
			return
		}
		why = "the pool is smaller"
	}
	s.log.Info("worker recycled", "worker", w.id, "pid", w.pid, "why", why)
	s.recycled.Add(1)
	w.retire()
	s.drop(w)
}

// fail kills a worker whose request did not complete and replaces it.
func (s *Supervisor) fail(w *worker, why string) {
	s.log.Warn("worker replaced", "worker", w.id, "pid", w.pid, "why", why)
	s.replaced.Add(1)
	w.kill()
	s.drop(w)
}

// Resize sets the number of workers and waits until the pool has that many
// ready (new ones are forked from the loaded session) or ctx ends. 0 parks
// the instance: no worker runs, the loaded session stays (alive, not
// ready), and the next resize forks from it in milliseconds.
func (s *Supervisor) Resize(ctx context.Context, n int) error {
	if n < 0 || n > MaxWorkers {
		return fmt.Errorf("workers must be 0 to %d, got %d", MaxWorkers, n)
	}
	s.mu.Lock()
	s.want = n
	s.mu.Unlock()
	s.poke()
	// Shrinking: idle workers beyond the size leave now, busy ones when
	// they are released.
shrink:
	for {
		s.mu.Lock()
		over := len(s.workers) > s.want
		s.mu.Unlock()
		if !over {
			break
		}
		select {
		case w := <-s.idle:
			s.log.Info("worker retired", "worker", w.id, "pid", w.pid, "why", "the pool is smaller")
			w.retire()
			s.drop(w)
		default:
			break shrink
		}
	}
	for {
		s.mu.Lock()
		have, want, ch := len(s.workers), s.want, s.resized
		s.mu.Unlock()
		if have == want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
