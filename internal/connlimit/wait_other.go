//go:build !linux

package connlimit

// waiter is Linux's (wait_linux.go); elsewhere each silent connection waits
// for its first byte on a goroutine of its own.
type waiter struct{}

func newWaiter(*Listener) *waiter { return nil }
func (*waiter) watch(*Conn) bool  { return false }
func (*waiter) take(*Conn) bool   { return false }
func (*waiter) close()            {}
