package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The upstream transport's connections have TCP_NODELAY and re-arm
// TCP_QUICKACK on every read; keep-alive reuses one connection.
func TestUpstreamTransportConn(t *testing.T) {
	var mu sync.Mutex
	var remotes []string
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})
	tr := NewUpstreamTransport()
	defer tr.CloseIdleConnections()
	if tr.MaxIdleConnsPerHost < 256 || tr.ForceAttemptHTTP2 || tr.TLSNextProto == nil || len(tr.TLSNextProto) != 0 {
		t.Errorf("transport: MaxIdleConnsPerHost %d, ForceAttemptHTTP2 %v, TLSNextProto %v; want >= 256, false, empty",
			tr.MaxIdleConnsPerHost, tr.ForceAttemptHTTP2, tr.TLSNextProto)
	}

	c, err := tr.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qc, ok := c.(*quickAckConn)
	if !ok {
		t.Fatalf("dialled conn: got %T, want *quickAckConn", c)
	}
	var nodelay int
	if err := qc.rc.Control(func(fd uintptr) { nodelay, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) }); err != nil {
		t.Fatal(err)
	}
	if nodelay != 1 {
		t.Errorf("TCP_NODELAY: got %d, want 1", nodelay)
	}

	client := &http.Client{Transport: tr}
	for range 3 {
		res, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 3 || remotes[0] != remotes[1] || remotes[1] != remotes[2] {
		t.Errorf("remote addresses %v: want one kept-alive connection", remotes)
	}
}

var _ net.Conn = (*quickAckConn)(nil)
