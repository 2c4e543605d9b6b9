package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

// followPoll is how often a following reader looks for new log data.
const followPoll = 100 * time.Millisecond

// rotatedPath names rotated file i (1 is the newest) of the live log.
func rotatedPath(live string, i int) string { return live + "." + strconv.Itoa(i) }

// rotateLoop copy-truncates logs that outgrew LogMaxBytes, every
// LogCheckInterval, until ctx ends.
func (d *Driver) rotateLoop(ctx context.Context) {
	defer close(d.loopDone)
	tick := time.NewTicker(d.cfg.LogCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.mu.Lock()
		ins := make([]*instance, 0, len(d.instances))
		for _, in := range d.instances {
			if in != nil {
				ins = append(ins, in)
			}
		}
		d.mu.Unlock()
		for _, in := range ins {
			d.rotateOne(in)
		}
	}
}

// rotateOne rotates one instance's log, logging the first failure of a run
// of failures and the recovery, not every tick.
func (d *Driver) rotateOne(in *instance) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("log rotation panicked", "instance", in.id, "panic", r)
		}
	}()
	err := in.rotate(d.cfg.LogMaxBytes, d.cfg.LogFiles)
	switch {
	case err != nil && !in.rotateFailing:
		d.log.Warn("cannot rotate instance log", "instance", in.id, "err", err)
		in.rotateFailing = true
	case err == nil && in.rotateFailing:
		d.log.Info("instance log rotates again", "instance", in.id)
		in.rotateFailing = false
	}
}

// rotate copy-truncates the live log when it is larger than max: .N is
// dropped, .i becomes .i+1, the live file is copied to .1 and truncated to
// zero. The server keeps its descriptor and, writing with O_APPEND, goes on
// at the new end. What the server writes between the end of the copy and
// the truncation is lost; the copy is re-checked just before truncating to
// keep that window small.
func (in *instance) rotate(max int64, keep int) error {
	in.logMu.Lock()
	defer in.logMu.Unlock()
	if in.gone {
		return nil
	}
	live := in.logPath()
	fi, err := os.Stat(live)
	if err != nil {
		return err
	}
	if fi.Size() <= max {
		return nil
	}
	if err := os.Remove(rotatedPath(live, keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(rotatedPath(live, i), rotatedPath(live, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	src, err := os.Open(live)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(rotatedPath(live, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		_, err = io.Copy(dst, src) // what arrived during the first copy
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Truncate(live, 0); err != nil {
		return err
	}
	in.rotations++
	return nil
}

// logSnap is a consistent view of an instance's log files: open
// descriptors, oldest first (the live file last), with their sizes at the
// moment of the snapshot.
type logSnap struct {
	live      string
	files     []*os.File
	sizes     []int64
	rotations int64
}

// snapshotLogs opens the instance's log files under logMu, so no rotation
// runs half-way through the snapshot.
func (in *instance) snapshotLogs(keep int) (*logSnap, error) {
	in.logMu.Lock()
	defer in.logMu.Unlock()
	if in.gone {
		return nil, fmt.Errorf("logs of instance %s: %w", in.id, driver.ErrNotFound)
	}
	s := &logSnap{live: in.logPath(), rotations: in.rotations}
	for i := keep; i >= 0; i-- {
		path := s.live
		if i > 0 {
			path = rotatedPath(s.live, i)
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			continue
		}
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				s.files = append(s.files, f)
				s.sizes = append(s.sizes, fi.Size())
				continue
			}
			f.Close()
		}
		s.close()
		return nil, fmt.Errorf("logs of instance %s: %w", in.id, err)
	}
	return s, nil
}

func (s *logSnap) close() {
	for _, f := range s.files {
		f.Close()
	}
}

// tailStart returns where the last n lines of the snapshot begin: a file
// index and an offset in it. n <= 0 means everything. A final newline ends
// the last line rather than starting an empty one.
func (s *logSnap) tailStart(n int) (int, int64, error) {
	if n <= 0 {
		return 0, 0, nil
	}
	const chunk = 32 << 10
	buf := make([]byte, chunk)
	last := true // the next byte seen is the very last one of the log
	for fi := len(s.files) - 1; fi >= 0; fi-- {
		for pos := s.sizes[fi]; pos > 0; {
			size := min(chunk, pos)
			pos -= size
			b := buf[:size]
			if _, err := s.files[fi].ReadAt(b, pos); err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, err
			}
			for j := len(b) - 1; j >= 0; j-- {
				if b[j] == '\n' && !last {
					if n--; n == 0 {
						return fi, pos + int64(j) + 1, nil
					}
				}
				last = false
			}
		}
	}
	return 0, 0, nil
}

// reader reads the snapshot from file fi, offset off, to the sizes taken.
func (s *logSnap) reader(fi int, off int64) io.Reader {
	rs := make([]io.Reader, 0, len(s.files)-fi)
	for i := fi; i < len(s.files); i++ {
		rs = append(rs, io.NewSectionReader(s.files[i], off, s.sizes[i]-off))
		off = 0
	}
	return io.MultiReader(rs...)
}

// Logs returns the instance's stdout and stderr, read across the rotated
// files (oldest first) and the live one. Tail counts lines from the end of
// all of them. With Follow, the reader then streams what the server
// writes, surviving rotations, until ctx ends, the reader is closed or Stop
// removes the instance.
func (d *Driver) Logs(ctx context.Context, id string, opts driver.LogOptions) (io.ReadCloser, error) {
	in, err := d.lookup("logs", id)
	if err != nil {
		return nil, err
	}
	snap, err := in.snapshotLogs(d.cfg.LogFiles)
	if err != nil {
		return nil, err
	}
	fi, off, err := snap.tailStart(opts.Tail)
	if err != nil {
		snap.close()
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	r := snap.reader(fi, off)
	if !opts.Follow {
		return &snapReader{Reader: r, snap: snap}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go follow(ctx, in, snap, r, pw)
	return &followReader{PipeReader: pr, cancel: cancel}, nil
}

// snapReader reads a snapshot and closes its files.
type snapReader struct {
	io.Reader
	snap *logSnap
}

func (r *snapReader) Close() error {
	r.snap.close()
	return nil
}

// followReader is the reading end of a follow; Close ends the follow.
type followReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *followReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// follow copies the snapshot r into pw, then polls the live file for what
// the server writes next. After a rotation it first reads the rest of what
// it had not sent from .1, then the live file from its new start. Two
// rotations within one poll lose the lines of the older one.
func follow(ctx context.Context, in *instance, snap *logSnap, r io.Reader, pw *io.PipeWriter) {
	defer snap.close()
	defer pw.Close() // every way out ends the reader with EOF (or the error set first)
	// A Write blocked on a reader that stopped reading returns once the
	// pipe is closed. (On its own this is not enough: a stop() that runs
	// before the context calls the function cancels it.)
	stop := context.AfterFunc(ctx, func() { pw.Close() })
	defer stop()
	if _, err := io.Copy(pw, r); err != nil {
		return
	}
	last := len(snap.files) - 1
	live, off, gen := snap.files[last], snap.sizes[last], snap.rotations
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		final := false
		select {
		case <-ctx.Done():
			return
		case <-in.removed:
			final = true // send what is left, then end
		case <-tick.C:
		}
		in.logMu.Lock()
		g := in.rotations
		fi, err := live.Stat()
		in.logMu.Unlock()
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		if g != gen {
			if g == gen+1 {
				if old, err := os.Open(rotatedPath(snap.live, 1)); err == nil {
					_, err = io.Copy(pw, io.NewSectionReader(old, off, 1<<62))
					old.Close()
					if errors.Is(err, io.ErrClosedPipe) {
						return
					}
				}
			}
			off, gen = 0, g
		}
		if size := fi.Size(); size > off {
			n, err := io.Copy(pw, io.NewSectionReader(live, off, size-off))
			off += n
			if err != nil {
				return
			}
		}
		if final {
			return
		}
	}
}
