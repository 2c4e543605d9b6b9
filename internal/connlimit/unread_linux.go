package connlimit

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketUnread asks the kernel how many bytes wait in nc's receive buffer
// (SIOCINQ, which is TIOCINQ's number, on a socket).
func socketUnread(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	n, ierr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
