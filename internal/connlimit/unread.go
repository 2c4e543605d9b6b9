package connlimit

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// Unread reports how many bytes have arrived on the connection that the
// server has not read yet: those read early by the listener and those in
// the socket's receive buffer. A server about to close an idle kept-alive
// connection asks first: bytes there are a request already sent, which
// deserves an answer rather than a reset. ok is false when it cannot tell.
// Call it only while the connection is idle (its reader is blocked in the
// socket, not in the listener's early bytes).
func (c *Conn) Unread() (n int, ok bool) {
	n, ok = socketUnread(c.Conn)
	return n + len(c.pending), ok
}

// Reads is how many bytes the connection's reader has taken so far. A
// server that noted it when the connection went idle knows, by a change,
// that a request is being read even though nothing is left unread.
func (c *Conn) Reads() uint64 { return c.reads.Load() }

// Of returns the *Conn under a connection the server was handed (itself,
// or a TLS connection over it), or nil.
func Of(nc net.Conn) *Conn {
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		nc = tc.NetConn()
	}
	c, _ := nc.(*Conn)
	return c
}

// UnreadOf is Unread for a connection the server was handed.
func UnreadOf(nc net.Conn) (int, bool) {
	if c := Of(nc); c != nil {
		return c.Unread()
	}
	return socketUnread(nc)
}

// Replay puts b back in front of the bytes the connection's reader has not
// taken yet: a server that read the start of a request and hands the
// connection to another server gives those bytes back, and the other
// server reads them first. Call it only from the connection's reader,
// never while a Read is in progress. Replayed bytes are never paced.
func (c *Conn) Replay(b []byte) {
	if len(b) == 0 {
		return
	}
	p := make([]byte, 0, len(b)+len(c.pending))
	c.pending = append(append(p, b...), c.pending...)
}

// Buffered is how many bytes the listener read early that the connection's
// reader has not taken yet (a reader that waits on the socket's readiness
// must take them first).
func (c *Conn) Buffered() int { return len(c.pending) }

// SyscallConn is the socket's, for waiting on its readiness without a read
// (see Buffered).
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
