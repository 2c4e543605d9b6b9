package connlimit

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Silent connections wait for their first byte without a goroutine each;
// the ones that then speak are served, and the timeout still closes the
// ones that never do.
func TestSilentConnectionsHoldNoGoroutine(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			l, base, client := server(t, Config{MaxConns: 1000, MaxConnsPerAddr: 500, FirstByteTimeout: time.Hour}, tlsOn, hello())
			if l.w == nil {
				t.Fatal("no epoll waiter on Linux")
			}
			addr := strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://")
			get(t, client, base+"/before") // the server's own goroutines are up
			before := runtime.NumGoroutine()
			const silent = 400
			for i := range silent {
				dialFrom(t, 10+i%2, addr)
			}
			waitFor(t, "the silent connections counted", func() bool { return value(l.m.open) >= silent })
			if got := runtime.NumGoroutine() - before; got > silent/10 {
				t.Errorf("%d silent connections added %d goroutines, want none per connection", silent, got)
			}
			// A connection that speaks after a while is served.
			c := dialFrom(t, 12, addr)
			waitFor(t, "it is counted", func() bool { return value(l.m.open) >= silent+1 })
			if tlsOn {
				get(t, client, base+"/after")
			} else {
				if _, err := io.WriteString(c, "GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), "hello 1") {
					t.Fatalf("late request: got %q, %v; want a 200 with hello 1", b, err)
				}
			}
		})
	}
}

// FirstByteTimeout applies to watched connections (a timer, not a read
// deadline), and Close of the listener closes them.
func TestWatchedTimeoutAndClose(t *testing.T) {
	l, base, _ := server(t, Config{FirstByteTimeout: 100 * time.Millisecond}, false, hello())
	addr := strings.TrimPrefix(base, "http://")
	c := dialFrom(t, 1, addr)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read from a silent connection: got %v, want EOF (closed by the server)", err)
	}
	waitFor(t, "the timeout counted", func() bool { return value(l.m.closed[reasonFirstByteTimeout]) == 1 })
	waitFor(t, "no connection left", func() bool { return value(l.m.open) == 0 })

	l2, base2, _ := server(t, Config{FirstByteTimeout: time.Hour}, false, hello())
	c2 := dialFrom(t, 2, strings.TrimPrefix(base2, "http://"))
	waitFor(t, "counted", func() bool { return value(l2.m.open) == 1 })
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the listener closed: got %v, want EOF", err)
	}
	waitFor(t, "no connection left", func() bool { return value(l2.m.open) == 0 })
	l2.w.mu.Lock()
	left := len(l2.w.byFD)
	l2.w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d connections still watched after Close", left)
	}
}
