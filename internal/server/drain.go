package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plumbline/plumbline/internal/connlimit"
)

// drainIdleGrace is how long a kept-alive HTTP/1 connection must have been
// idle for a graceful stop to close it: a client that sends on it sooner
// is answered (with Connection: close) instead of finding it closed.
const drainIdleGrace = time.Second

// drainer makes a graceful stop answer every request that reached the
// server. http.Server.Shutdown closes idle kept-alive connections at once:
// a request a client sent on one at that instant (its bytes already in the
// socket, the server not yet reading) is lost, the client seeing the
// connection reset. While draining, every HTTP/1 response says Connection:
// close, and an idle connection is let go only once it has been idle for
// drainIdleGrace and nothing of a next request has reached it (quiet): its
// server's wait for a next request is ended with a past read deadline, so
// a request its reader took at that instant is still answered. Shutdown
// then closes what is left and waits for the requests in flight (HTTP/2
// connections get its GOAWAY).
type drainer struct {
	draining atomic.Bool
	mu       sync.Mutex            // protects idle
	idle     map[net.Conn]idleConn // HTTP/1 connections idle now
}

// idleConn is when a connection went idle and how many bytes it had read
// then, and when the drain ended its wait for a next request (zero until
// it does).
type idleConn struct {
	since time.Time
	reads uint64
	ended time.Time
}

// drainCloseAfter is how long a connection whose wait for a next request
// the drain ended may take to close itself before the drain closes it.
const drainCloseAfter = time.Second

func newDrainer() *drainer { return &drainer{idle: map[net.Conn]idleConn{}} }

// quiet reports whether nothing of a next request has reached c: nothing
// unread in its socket, and its reader has taken nothing since it went idle
// (it may have read a request and not yet said it is active). Connections
// it cannot tell about are never quiet.
func quiet(c net.Conn, ic idleConn) bool {
	cc := connlimit.Of(c)
	if cc == nil || cc.Reads() != ic.reads {
		return false
	}
	n, ok := cc.Unread()
	return ok && n == 0
}

// configure follows srv's connections (chaining any hook srv had).
func (d *drainer) configure(srv *http.Server) {
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.mu.Lock()
		if s == http.StateIdle {
			ic := idleConn{since: time.Now()}
			if cc := connlimit.Of(c); cc != nil {
				ic.reads = cc.Reads()
			}
			d.idle[c] = ic
		} else {
			delete(d.idle, c)
		}
		d.mu.Unlock()
		if prev != nil {
			prev(c, s)
		}
	}
}

// handler marks responses Connection: close while draining.
func (d *drainer) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// drain closes idle HTTP/1 connections as they become safe to close, and
// returns when none is left or ctx ends. Call it after the listener
// stopped accepting, before Shutdown.
func (d *drainer) drain(ctx context.Context) {
	d.draining.Store(true)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		for c, ic := range d.idle {
			switch {
			case !ic.ended.IsZero():
				// Its reader was in no socket read (nothing that a
				// deadline ends): close it.
				if time.Since(ic.ended) >= drainCloseAfter {
					_ = c.Close()
					delete(d.idle, c)
				}
			case time.Since(ic.since) >= drainIdleGrace && quiet(c, ic):
				// End the server's wait for a next request rather than
				// close the connection: a request whose bytes its reader
				// took from the socket just now (before it counted them)
				// is still served, where a close would lose it. The
				// server closes the connection when its read ends empty,
				// and the ConnState hook removes it from idle.
				_ = c.SetReadDeadline(time.Unix(1, 0))
				ic.ended = time.Now()
				d.idle[c] = ic
			}
		}
		left := len(d.idle)
		d.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
