package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// dialUpstream opens the gateway's client connection to a one-connection
// listener and returns both ends.
func dialUpstream(t *testing.T, rcvbuf int) (*upstreamConn, net.Conn) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf > 0 { // inherited by the accepted connection
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		}
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := newUpstream().dial(context.Background(), newHostPool(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.nc.Close(); _ = peer.Close() })
	if c.rc == nil {
		t.Fatal("a TCP connection without a RawConn: writeAndAwait is not exercised")
	}
	c.setDeadline(time.Now().Add(30 * time.Second))
	return c, peer
}

// A request larger than the socket takes in one write goes out whole: the
// rest of a short raw write follows the usual way, and the answer is read.
func TestWriteAndAwaitShortWrite(t *testing.T) {
	// Small buffers on both sides: the raw write cannot take 2 MiB at once.
	c, peer := dialUpstream(t, 4096)
	if err := c.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	}); err != nil {
		t.Fatal(err)
	}
	c.head = bytes.Repeat([]byte("x"), 2<<20)
	want := bytes.Clone(c.head)
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the gateway's write fill the buffers
		b := make([]byte, len(want))
		_, err := io.ReadFull(peer, b)
		if err != nil {
			got <- nil
			return
		}
		got <- b
		_, _ = io.WriteString(peer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}()
	if err := c.writeRequest(nil); err != nil {
		t.Fatalf("writeRequest: %v", err)
	}
	if c.writeN == len(want) {
		t.Fatalf("the raw write took all %d bytes at once: the short write this test is about did not happen", len(want))
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the instance got %d bytes, want the %d written", len(b), len(want))
	}
	h := http.Header{}
	rh, err := c.readResponse(h, ownedHeader)
	if err != nil || rh.status != 200 || rh.length != 2 {
		t.Fatalf("readResponse: got %+v, %v; want 200 with a 2-byte body", rh, err)
	}
}

// The wait for the answer ends when the exchange is aborted (the client
// left), and the read after it reports that at once.
func TestWriteAndAwaitAbort(t *testing.T) {
	c, peer := dialUpstream(t, 0)
	c.head = append(c.head[:0], "GET /score HTTP/1.1\r\nHost: x\r\n\r\n"...)
	go func() {
		b := make([]byte, 64)
		_, _ = peer.Read(b) // the request arrives; no answer ever comes
		c.abort()
	}()
	if err := c.writeRequest(nil); err != nil {
		t.Fatalf("writeRequest: %v", err)
	}
	_, err := c.readResponse(http.Header{}, ownedHeader)
	var ne net.Error
	if !asNetError(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after the abort: got %v, want a deadline error", err)
	}
}

func asNetError(err error, ne *net.Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}
