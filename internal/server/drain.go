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
// close, and an idle connection is closed only once it has been idle for
// drainIdleGrace and nothing unread waits in its socket; Shutdown then
// closes what is left and waits for the requests in flight (HTTP/2
// connections get its GOAWAY).
type drainer struct {
	draining atomic.Bool
	mu       sync.Mutex             // protects idle
	idle     map[net.Conn]time.Time // HTTP/1 connections idle now, since when
}

func newDrainer() *drainer { return &drainer{idle: map[net.Conn]time.Time{}} }

// configure follows srv's connections (chaining any hook srv had).
func (d *drainer) configure(srv *http.Server) {
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.mu.Lock()
		if s == http.StateIdle {
			d.idle[c] = time.Now()
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
		for c, since := range d.idle {
			if time.Since(since) < drainIdleGrace {
				continue
			}
			if n, ok := connlimit.UnreadOf(c); ok && n == 0 {
				_ = c.Close()
				delete(d.idle, c)
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
