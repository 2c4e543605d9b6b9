//go:build !linux

package connlimit

import "net"

// socketUnread cannot tell here.
func socketUnread(net.Conn) (int, bool) { return 0, false }
