// Package h1 serves HTTP/1.1 scoring requests on plain TCP with a
// connection loop of its own, and hands every other connection, whole, to
// the standard http.Server.
//
// net/http's server spends, per request on a kept-alive connection, a
// goroutine and a read that finds nothing to watch for the client going
// away (and two deadline changes to stop it), then a read for the next
// request that finds nothing before it waits: on a 2-core machine that is
// over a quarter of the gateway's CPU per request (docs/benchmarks.md,
// "Where the gateway's CPU goes"). This loop:
//
//   - parses each request head with net/http's own parser
//     (http.ReadRequest: its transfer rules for Content-Length,
//     Transfer-Encoding and chunked bodies), plus the checks net/http's
//     server adds;
//   - serves only what the Fast predicate accepts (scoring requests) and
//     only requests of the common shape: HTTP/1.1, one valid Host, valid
//     header fields, no Expect, no Connection: close, a path in origin
//     form, a head within MaxHeaderBytes. Anything else — another path, a
//     malformed or unusual request, a TLS connection — goes to the
//     standard server with the bytes already read replayed first, so that
//     it answers exactly as it would have (its 400s, 417s, 431s, uploads,
//     streams, HTTP/2 over TLS);
//   - watches for a client that goes away only once a handler has run for
//     disconnectAfter (the request's context is then cancelled when the
//     client closes), with a goroutine whose byte, if any, is kept for the
//     next request;
//   - writes a response inside the socket's RawConn.Read and then waits
//     for the next request on the poller, with no read that finds nothing
//     (wait.go says why this is safe);
//   - writes responses byte for byte as net/http does (status line, the
//     handler's headers sorted, Date, Content-Length when the handler
//     finished within 2 KiB, chunked otherwise, Content-Type sniffing,
//     HEAD and bodiless statuses), so a client cannot tell the two apart
//     but for timing (the differential test compares them).
//
// The server's ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes, ConnState
// hook, ErrorLog and Handler apply to this loop as to the standard server.
//
// It imports nothing of plumbline's but internal/connlimit.
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener accepts from an inner listener, serves the plain-TCP
// connections' scoring requests itself and returns from Accept the
// connections the standard server must serve. Use it as srv.Serve(l), and
// call Shutdown after srv.Shutdown.
type Listener struct {
	inner net.Listener
	srv   *http.Server
	fast  func(*http.Request) bool

	startOnce sync.Once
	std       chan net.Conn // handed to the standard server
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	failed    chan struct{} // closed when the inner listener failed for good
	wg        sync.WaitGroup
	// served and handed count requests served here and connections
	// handed to the standard server.
	served, handed atomic.Uint64
	// closed mirrors closing for the response path, without the lock.
	closed atomic.Bool

	mu sync.Mutex // protects the fields below
	// live are the connections the loop serves now.
	live map[*conn]struct{}
	// acceptErr is the inner listener's final error.
	acceptErr error
	closing   bool
}

// NewListener serves srv's plain-TCP connections' requests that fast
// accepts (decided from the request head, before any handler runs) with
// srv.Handler on this package's loop. srv's fields are read when the first
// connection arrives: configure srv before srv.Serve(l).
func NewListener(inner net.Listener, srv *http.Server, fast func(*http.Request) bool) *Listener {
	return &Listener{
		inner:  inner,
		srv:    srv,
		fast:   fast,
		std:    make(chan net.Conn),
		done:   make(chan struct{}),
		failed: make(chan struct{}),
		live:   make(map[*conn]struct{}),
	}
}

// Accept returns the next connection for the standard server: a TLS
// connection, or a plain one whose request this loop does not serve.
// After the inner listener was closed, Accept still hands over connections
// the loop gives up (a graceful stop answers what reached them) until
// Close.
func (l *Listener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.std:
		return c, nil
	case <-l.failed:
		l.mu.Lock()
		err := l.acceptErr
		l.mu.Unlock()
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Served is how many requests the loop served itself; HandedOver how many
// connections it gave the standard server (TLS ones included).
func (l *Listener) Served() uint64     { return l.served.Load() }
func (l *Listener) HandedOver() uint64 { return l.handed.Load() }

// Addr is the inner listener's.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting, closes the loop's connections that wait for a
// request, and makes the others close after their response.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		err = l.inner.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil // closed before: a graceful stop closes it first
		}
		close(l.done)
		l.mu.Lock()
		l.closing = true
		l.closed.Store(true)
		var idle []*conn
		for c := range l.live {
			if c.idle {
				idle = append(idle, c)
			}
		}
		l.mu.Unlock()
		for _, c := range idle {
			_ = c.nc.Close() // its loop sees the error and ends
		}
	})
	return err
}

// Shutdown closes l and waits for the loop's requests in flight to be
// answered, or until ctx ends, when it closes what is left and returns
// without waiting for handlers that do not return (as
// http.Server.Shutdown).
func (l *Listener) Shutdown(ctx context.Context) error {
	_ = l.Close()
	ended := make(chan struct{})
	go func() { l.wg.Wait(); close(ended) }()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.live {
			_ = c.nc.Close()
		}
		l.mu.Unlock()
		return ctx.Err()
	}
}

// acceptLoop takes the inner listener's connections until it fails.
func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, net.ErrClosed) {
				delay = min(max(5*time.Millisecond, 2*delay), time.Second)
				time.Sleep(delay)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return // a graceful stop: Accept keeps handing over until Close
			}
			l.mu.Lock()
			l.acceptErr = err
			l.mu.Unlock()
			close(l.failed)
			return
		}
		delay = 0
		if _, isTLS := nc.(*tls.Conn); isTLS {
			l.handOver(nc)
			continue
		}
		c := newConn(l, nc)
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			_ = nc.Close()
			continue
		}
		l.live[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go c.serve()
	}
}

// handOver gives nc to the standard server, or closes it once l is closed.
func (l *Listener) handOver(nc net.Conn) {
	l.handed.Add(1)
	select {
	case l.std <- nc:
	case <-l.done:
		_ = nc.Close()
	}
}

// forget removes an ended connection.
func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
	l.wg.Done()
}

// setIdle records whether c waits for a request with nothing read yet (the
// connections Close closes at once). It reports false when l is closing:
// the connection must close instead.
func (l *Listener) setIdle(c *conn, idle bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.idle = idle
	return !l.closing
}

func (l *Listener) isClosing() bool { return l.closed.Load() }
