package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/connlimit"
)

// heldListener hands out connections whose reads, once armed, wait for a
// release before reaching the socket: a request a client sends meanwhile
// sits unread in the socket while the server sees the connection idle —
// the instant a SIGTERM can catch.
type heldListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*heldConn
}

func (l *heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &heldConn{TCPConn: c.(*net.TCPConn), release: make(chan struct{})}
	l.mu.Lock()
	l.conns = append(l.conns, hc)
	l.mu.Unlock()
	return hc, nil
}

type heldConn struct {
	*net.TCPConn
	arm     bool // hold its reads from the next time it is idle
	hold    bool
	mu      sync.Mutex
	release chan struct{}
	// after is how long the first read after the release takes to return
	// what it took from the socket: a reader the machine did not run at
	// once, between its system call and its count of the bytes.
	after time.Duration
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	hold, after := c.hold, c.after
	if hold {
		c.hold, c.after = false, 0
	}
	c.mu.Unlock()
	if !hold {
		return c.TCPConn.Read(p)
	}
	<-c.release
	n, err := c.TCPConn.Read(p)
	time.Sleep(after)
	return n, err
}

// TestDrainAnswersRequestsOnIdleConnections is defect 10: at SIGTERM,
// requests that had arrived on kept-alive connections were closed without
// an answer. Two connections are idle; on one a request has arrived that the
// server has not read yet. The drain closes the quiet one, answers the
// other (saying Connection: close), and only then shuts the server down.
func TestDrainAnswersRequestsOnIdleConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &heldListener{Listener: inner}
	dr := newDrainer()
	srv := &http.Server{Handler: dr.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "scored")
	}))}
	// When an armed connection goes idle, its next read (the next request)
	// waits for the release.
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		cc := connlimit.Of(c)
		if cc == nil {
			return
		}
		if hc, ok := cc.Conn.(*heldConn); ok && s == http.StateIdle {
			hc.mu.Lock()
			hc.hold = hc.arm
			hc.mu.Unlock()
		}
	}
	dr.configure(srv)
	guard, err := connlimit.New(ln, connlimit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(guard)

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	send := func(c net.Conn) {
		fmt.Fprintf(c, "POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	}
	busy, busyR := dial()
	waitConns(t, ln, 1)
	ln.mu.Lock()
	held := ln.conns[0]
	ln.mu.Unlock()
	held.mu.Lock()
	held.arm = true
	// The drain looks at the connection while its reader holds the
	// request, not yet counted: it must not close the connection then.
	held.after = 10 * 20 * time.Millisecond
	held.mu.Unlock()
	quiet, quietR := dial()
	for _, cr := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{busy, busyR}, {quiet, quietR}} {
		send(cr.c)
		res, err := http.ReadResponse(cr.r, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("first request: %v %v", res, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// Both idle now. The busy one's next read waits: its request arrives
	// and stays unread.
	waitIdle(t, dr, 2)
	send(busy)
	waitUnread(t, dr)

	// SIGTERM: stop accepting, drain, shut down.
	done := make(chan struct{})
	go func() {
		defer close(done)
		guard.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dr.drain(ctx)
		srv.Shutdown(ctx)
	}()
	// The quiet connection goes once it has been idle long enough.
	quiet.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := quietR.ReadByte(); err == nil {
		t.Error("the quiet idle connection got bytes, want it closed")
	}
	// The request that had arrived is answered.
	time.Sleep(drainIdleGrace + 100*time.Millisecond) // the drain has looked at it more than once
	close(held.release)
	busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatalf("the request that had arrived when the drain began: %v, want an answer", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "scored" || !res.Close {
		t.Errorf("answer: %d %q close=%v, want 200 scored with Connection: close", res.StatusCode, b, res.Close)
	}
	<-done
}

// eventually fails t unless cond holds within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitConns(t *testing.T, ln *heldListener, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d connections accepted", n), func() bool {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.conns) >= n
	})
}

func waitIdle(t *testing.T, dr *drainer, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d idle connections", n), func() bool {
		dr.mu.Lock()
		defer dr.mu.Unlock()
		return len(dr.idle) == n
	})
}

// waitUnread waits until some idle connection has unread bytes.
func waitUnread(t *testing.T, dr *drainer) {
	t.Helper()
	eventually(t, "the request reached the socket", func() bool {
		dr.mu.Lock()
		defer dr.mu.Unlock()
		for c := range dr.idle {
			if n, _ := connlimit.UnreadOf(c); n > 0 {
				return true
			}
		}
		return false
	})
}
