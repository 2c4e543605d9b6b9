package rworker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// worker is one forked R process and the two named pipes to it. A worker
// serves one request at a time: the pool hands it to one request, which
// gives it back (or kills it).
type worker struct {
	id    string
	pid   int
	in    *os.File // requests, to R
	out   *os.File // responses, from R
	r     *bufio.Reader
	since time.Time // when it was ready

	requests  atomic.Int64
	busySince atomic.Int64 // unix nanoseconds; 0 while idle

	closeOnce sync.Once
	gone      atomic.Bool

	// statm is the worker's /proc/<pid>/statm, kept open: the pool reads
	// it after every request (the memory bound), one pread instead of an
	// open, a read and a close. nil when it could not be opened.
	statmMu sync.Mutex
	statm   *os.File
}

// forkWorker asks the session for a worker with this id and connects to it.
// It returns once the worker said hello: it can take a request.
func forkWorker(ctx context.Context, s *session, dir, id string) (*worker, error) {
	inPath := filepath.Join(dir, id+".in")
	outPath := filepath.Join(dir, id+".out")
	for _, p := range []string{inPath, outPath} {
		_ = os.Remove(p)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
	}
	// The pipes are only needed until both ends are open.
	defer os.Remove(inPath)
	defer os.Remove(outPath)

	// Our read end first, non-blocking, so that R's open for writing finds
	// a reader. R then opens its read end, which our non-blocking open for
	// writing waits for.
	out, err := os.OpenFile(outPath, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", outPath, err)
	}
	pids, err := s.requestFork(id)
	if err != nil {
		out.Close()
		return nil, err
	}
	forked := 0
	in, err := openWriter(ctx, s, inPath, pids, &forked)
	if err != nil {
		out.Close()
		// R may still fork it: it will find no writer and stop.
		return nil, err
	}
	w := &worker{id: id, in: in, out: out, r: bufio.NewReaderSize(out, 64<<10)}
	if dl, ok := ctx.Deadline(); ok {
		_ = out.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = out.SetReadDeadline(time.Unix(1, 0)) })
	pid, err := readHello(w.r)
	stop()
	_ = out.SetReadDeadline(time.Time{})
	if err != nil {
		w.close()
		if forked == 0 {
			select {
			case forked = <-pids:
			default:
			}
		}
		if forked > 0 {
			_ = syscall.Kill(forked, syscall.SIGKILL)
		}
		return nil, fmt.Errorf("worker %s did not start: %w", id, err)
	}
	w.pid = pid
	w.since = time.Now()
	if f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/statm"); err == nil {
		w.statm = f
	}
	return w, nil
}

// openWriter opens a named pipe for writing once its reader (the forked
// worker) has opened it, polling: a blocking open could not be abandoned if
// the fork never happens. The worker's pid, once the session reports it,
// goes to *forked; a failed fork ends the wait at once.
func openWriter(ctx context.Context, s *session, path string, pids <-chan int, forked *int) (*os.File, error) {
	wait := 100 * time.Microsecond
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the R session did not fork a worker in time: %w", ctx.Err())
		case <-s.exited:
			return nil, fmt.Errorf("the R session %s", s.exitReason())
		case pid := <-pids:
			if pid < 0 {
				return nil, errors.New("the R session could not fork a worker (its log says why)")
			}
			// Forked: its pipe opens in a moment. Put the pid back for
			// forkWorker, and keep polling.
			pids = nil
			*forked = pid
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Millisecond)
	}
}

// exchange sends one request frame and reads the answer. It stops at
// deadline or when ctx ends; any error leaves the worker unusable (the
// caller kills it).
func (w *worker) exchange(ctx context.Context, frame []byte, deadline time.Time, maxBody int64, tm *stageTimes) (response, error) {
	w.busySince.Store(time.Now().UnixNano())
	defer w.busySince.Store(0)
	_ = w.in.SetWriteDeadline(deadline)
	_ = w.out.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() {
		_ = w.in.SetWriteDeadline(time.Unix(1, 0))
		_ = w.out.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	if _, err := w.in.Write(frame); err != nil {
		return response{}, err
	}
	if tm != nil {
		tm.written = time.Now()
	}
	res, err := readResponse(w.r, maxBody)
	if tm != nil {
		tm.answered = time.Now()
	}
	if err == nil {
		w.requests.Add(1)
	}
	return res, err
}

// kill ends the worker at once (SIGKILL) and closes its pipes.
func (w *worker) kill() {
	if w.pid > 0 && !w.gone.Load() {
		_ = syscall.Kill(w.pid, syscall.SIGKILL)
	}
	w.close()
}

// retire lets the worker end on its own: it reads the end of its request
// pipe and exits.
func (w *worker) retire() { w.close() }

func (w *worker) close() {
	w.closeOnce.Do(func() {
		w.gone.Store(true)
		w.in.Close()
		w.out.Close()
		w.statmMu.Lock()
		if w.statm != nil {
			w.statm.Close()
			w.statm = nil
		}
		w.statmMu.Unlock()
	})
}

// rss reads the worker's resident set size in bytes; 0 if it cannot.
func (w *worker) rss() int64 {
	w.statmMu.Lock()
	defer w.statmMu.Unlock()
	if w.statm == nil {
		return rss(w.pid)
	}
	// One pread: File.ReadAt would read again to fill the buffer, and
	// statm is shorter than it (two system calls per request).
	var buf [128]byte
	var n int
	var rerr error
	rc, err := w.statm.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Pread(int(fd), buf[:], 0)
			return true
		})
	}
	if err != nil || rerr != nil || n <= 0 {
		return 0
	}
	return statmRSS(buf[:n])
}

// rss reads the worker's resident set size in bytes from /proc; 0 if it
// cannot.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	return statmRSS(b)
}

// statmRSS reads the resident pages (the second field) of a statm line.
func statmRSS(b []byte) int64 {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
