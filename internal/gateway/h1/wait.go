package h1

import (
	"errors"
	"net/http"
	"os"
	"syscall"
	"time"
)

// pipelineGuard bounds the first wait for a next request after a response
// written inside RawConn.Read; see awaitNext. A connection in that wait is
// not yet idle to the ConnState hook (connlimit cannot evict it to make
// room, a drain does not count it): the hook hears of it once the wait
// ends, by a request or by the guard.
const pipelineGuard = 100 * time.Millisecond

// awaitNext sends the response in the out buffer and waits for the next
// request's first bytes. It reports false when the connection must close.
//
// net/http writes a response, then reads for the next request: a read
// that finds nothing (a client answers a response it has not received
// yet), then a wait on the poller, then the read that gets it. Here the
// response is written inside the socket's RawConn.Read, and the wait
// follows without a read. RawConn.Read first resets the descriptor's
// readiness, so the write must happen inside it: any request that arrives
// after the write wakes the wait. A read that skipped its system call
// outside RawConn.Read would lose a readiness noted before the reset and
// wait for nothing.
//
// What arrived before the reset — a pipelining client's next request, sent
// while the previous one was served, after the loop's last read — is not
// noted: the poller is edge-triggered and its event came before. So the
// first wait is bounded by pipelineGuard; when it passes, a peek (inside
// RawConn.Read, so that it too cannot miss an arrival) tells whether a
// request is there. If one is, the client pipelines and the connection
// uses the usual read from then on: a pipelining client waits
// pipelineGuard once per connection. A client that sends its next request
// after the response (every browser, HTTP library and load tool by
// default) never waits and never pays for a read that finds nothing.
func (c *conn) awaitNext() bool {
	srv := c.l.srv
	idle := idleTimeout(srv)
	start := time.Now()
	pending := c.br.Buffered() > 0 || len(c.src.extra) > 0 || (c.cl != nil && c.cl.Buffered() > 0)
	if c.rc == nil || pending || c.pipelines || c.werr != nil {
		c.flushOut()
		if c.werr != nil {
			return false
		}
		c.hook(http.StateIdle)
		if pending {
			return true
		}
		return c.readNext(start, idle)
	}
	guard := pipelineGuard
	if idle > 0 && idle < guard {
		guard = idle
	}
	_ = c.nc.SetReadDeadline(start.Add(guard))
	c.wrote, c.writeN, c.writeEr, c.stop = false, 0, nil, false
	err := c.rc.Read(c.waitFn)
	if !c.wrote { // the descriptor failed before the write
		c.out = c.out[:0]
		return false
	}
	if c.writeEr != nil && c.writeEr != syscall.EAGAIN && c.writeEr != syscall.EINTR {
		c.werr = os.NewSyscallError("write", c.writeEr)
		c.out = c.out[:0]
		return false
	}
	if c.writeN < len(c.out) { // a full send buffer, or a signal: the rest the usual way
		c.out = c.out[c.writeN:]
		c.flushOut()
		if c.werr != nil {
			return false
		}
		c.hook(http.StateIdle)
		return c.readNext(start, idle)
	}
	c.out = c.out[:0]
	if c.stop {
		return false
	}
	switch {
	case err == nil:
		c.l.setIdle(c, false)
		c.hook(http.StateIdle)
		return true
	case errors.Is(err, os.ErrDeadlineExceeded) && (idle <= 0 || guard < idle):
		// The guard passed: a request that came before the write, or none.
		// From here the hook knows the connection idle (connlimit may
		// close it to make room, a graceful stop drains it).
		c.hook(http.StateIdle)
		if idle > 0 {
			_ = c.nc.SetReadDeadline(start.Add(idle))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		c.peeked = false
		if err := c.rc.Read(c.peekFn); err != nil {
			c.l.setIdle(c, false)
			return false
		}
		c.l.setIdle(c, false)
		return true
	}
	c.l.setIdle(c, false)
	return false
}

// writeInRead is awaitNext's RawConn.Read callback: the write, then the
// wait (see awaitNext).
func (c *conn) writeInRead(fd uintptr) bool {
	if c.wrote {
		return true // readable, or the wait failed
	}
	c.wrote = true
	n, err := syscall.Write(int(fd), c.out)
	c.writeN, c.writeEr = max(n, 0), err
	if err != nil || n < len(c.out) {
		return true
	}
	// The response is out: the connection is idle now for Listener.Close
	// (not before: it closes idle connections, and must not lose it). The
	// ConnState hook hears of it after the wait (see awaitNext): a hook may
	// close the connection, which inside RawConn.Read would wait for
	// itself.
	if !c.l.setIdle(c, true) {
		c.stop = true
		return true
	}
	return false
}

// peekInRead tells whether a request is waiting, and waits for one if
// not. A request found at once means the client pipelines.
func (c *conn) peekInRead(fd uintptr) bool {
	if c.peeked {
		return true
	}
	c.peeked = true
	n, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if n > 0 {
		c.pipelines = true
		return true
	}
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK // EOF or an error: the read says
}

// readNext waits, with the usual read, for the next request's first byte.
func (c *conn) readNext(start time.Time, idle time.Duration) bool {
	if !c.l.setIdle(c, true) {
		return false
	}
	if idle > 0 {
		_ = c.nc.SetReadDeadline(start.Add(idle))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	_, err := c.br.Peek(1)
	c.l.setIdle(c, false)
	return err == nil
}
