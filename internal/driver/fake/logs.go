package fake

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/plumbline/plumbline/internal/driver"
)

// logBuffer is an instance's log in memory. The zero value is empty.
type logBuffer struct {
	// mu guards data and changed.
	mu   sync.Mutex
	data []byte
	// changed is closed (and replaced) whenever data grows.
	changed chan struct{}
}

func (l *logBuffer) append(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.data = append(l.data, line...)
	l.data = append(l.data, '\n')
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// since returns the data from off on, and a channel closed when more comes.
func (l *logBuffer) since(off int) ([]byte, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return bytes.Clone(l.data[off:]), l.changed
}

// reader returns the last opts.Tail lines (all when 0) and, with Follow,
// what comes after, until ctx ends, the reader is closed or removed closes.
func (l *logBuffer) reader(ctx context.Context, opts driver.LogOptions, removed <-chan struct{}) io.ReadCloser {
	data, _ := l.since(0)
	start := tailStart(data, opts.Tail)
	if !opts.Follow {
		return io.NopCloser(bytes.NewReader(data[start:]))
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close() // every way out ends the reader with EOF
		// A Write blocked on a reader that stopped reading returns once the
		// pipe is closed.
		stop := context.AfterFunc(ctx, func() { pw.Close() })
		defer stop()
		if _, err := pw.Write(data[start:]); err != nil {
			return
		}
		off := len(data)
		for {
			more, changed := l.since(off)
			if len(more) > 0 {
				if _, err := pw.Write(more); err != nil {
					return
				}
				off += len(more)
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-removed:
				return
			}
		}
	}()
	return &followReader{PipeReader: pr, cancel: cancel}
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

// tailStart returns the offset where the last n lines of data begin; n <= 0
// means all. A final newline ends the last line.
func tailStart(data []byte, n int) int {
	if n <= 0 {
		return 0
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			if n--; n == 0 {
				return i + 1
			}
		}
	}
	return 0
}
