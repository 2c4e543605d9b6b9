package connlimit

import (
	"crypto/tls"
	"net"
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

// UnreadOf is Unread for a connection the server was handed: a *Conn, or a
// TLS connection over one.
func UnreadOf(nc net.Conn) (int, bool) {
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		nc = tc.NetConn()
	}
	if c, isConn := nc.(*Conn); isConn {
		return c.Unread()
	}
	return socketUnread(nc)
}
