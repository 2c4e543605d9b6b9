package connlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// A server that read the start of a request and hands the connection on
// gives the bytes back: the next reader reads them first, then the socket.
func TestReplay(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(inner, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	if _, err := c.SyscallConn(); err != nil {
		t.Errorf("SyscallConn of a TCP connection: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 16)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	if c.Buffered() != 0 {
		t.Errorf("Buffered after reading everything: %d, want 0", c.Buffered())
	}
	c.Replay(head)
	if c.Buffered() != len(head) {
		t.Errorf("Buffered after Replay: %d, want %d", c.Buffered(), len(head))
	}
	if _, err := io.WriteString(client, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 16+11)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if want := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"; string(got) != want {
		t.Errorf("read after Replay: got %q, want %q", got, want)
	}
	_ = c.Close()
}
