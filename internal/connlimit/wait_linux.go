package connlimit

import (
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waiter watches silent connections for their first byte with one epoll
// instance and one goroutine for them all, instead of a goroutine blocked
// in a read per connection: a flood of thousands of silent connections then
// costs no goroutine stacks for the garbage collector to scan at every
// cycle and no memory beyond the Conn. When a connection becomes readable
// (or its peer closes it) it gets its goroutine (Conn.awaitFirstBytes),
// whose read then returns at once; FirstByteTimeout is a timer.
type waiter struct {
	l      *Listener
	mu     sync.Mutex // protects the fields below and every Conn's watched
	epfd   int        // -1 once run has ended
	wake   int        // an eventfd that ends run's wait when the listener closes
	byFD   map[int32]*Conn
	closed bool
}

// newWaiter returns nil when epoll is not available; connections then wait
// on a goroutine each.
func newWaiter(l *Listener) *waiter {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil
	}
	w := &waiter{l: l, epfd: epfd, wake: wake, byFD: make(map[int32]*Conn)}
	go w.run()
	return w
}

// watch waits for c's first byte without a goroutine; false if it cannot
// (the caller then starts c.awaitFirstBytes itself).
func (w *waiter) watch(c *Conn) bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	added := false
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	cerr := raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
		if unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) == nil {
			c.fd, added = int32(fd), true
			w.byFD[c.fd] = c
		}
	})
	if cerr != nil || !added {
		return false
	}
	c.watched = true
	c.timer = time.AfterFunc(time.Until(c.accepted.Add(w.l.cfg.FirstByteTimeout)), c.firstByteTimeout)
	return true
}

// take removes c from the watch, reporting whether it was still watched
// (exactly one of the first byte, the timeout and Close wins).
func (w *waiter) take(c *Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !c.watched {
		return false
	}
	c.watched = false
	if w.byFD[c.fd] == c {
		delete(w.byFD, c.fd)
	}
	// The descriptor is still open here (Close takes c off first), so this
	// cannot reach another connection's; a failure means epoll already let
	// go of it.
	if w.epfd >= 0 {
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	return true
}

// run hands readable connections to their goroutine until close.
func (w *waiter) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.fail()
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(w.wake) {
				w.mu.Lock()
				_ = unix.Close(w.epfd)
				_ = unix.Close(w.wake)
				w.epfd, w.wake = -1, -1
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			c := w.byFD[ev.Fd]
			w.mu.Unlock()
			if c != nil && w.take(c) {
				go c.awaitFirstBytes()
			}
		}
	}
}

// fail hands every watched connection to a goroutine of its own (epoll
// broke: they wait the old way).
func (w *waiter) fail() {
	w.mu.Lock()
	w.closed = true
	var conns []*Conn
	for _, c := range w.byFD {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	for _, c := range conns {
		if w.take(c) {
			go c.awaitFirstBytes()
		}
	}
}

// close stops run; the listener closes the silent connections itself.
func (w *waiter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.wake < 0 {
		w.closed = true
		return
	}
	w.closed = true
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1) // the eventfd's counter becomes readable
	_, _ = unix.Write(w.wake, one[:])
}
