package gateway

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tuneConn sets TCP_NODELAY and wraps a TCP connection so that every Read
// first re-arms TCP_QUICKACK: Linux clears it after it fires, so it must be
// set again before each read (tcp(7)).
func tuneConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	_ = tc.SetNoDelay(true)
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, rc: rc}
}

// quickAckConn is a TCP connection that never delays its ACKs.
type quickAckConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func (c *quickAckConn) Read(b []byte) (int, error) {
	_ = c.rc.Control(setQuickAck)
	return c.TCPConn.Read(b)
}

// setQuickAck is a package-level func so that Control does not allocate a
// closure per read.
func setQuickAck(fd uintptr) {
	_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
}
