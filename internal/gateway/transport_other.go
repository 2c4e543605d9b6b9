//go:build !linux

package gateway

import "net"

// tuneConn sets TCP_NODELAY; TCP_QUICKACK exists only on Linux.
func tuneConn(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c
}
