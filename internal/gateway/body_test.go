package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// closedAfterEOF is an inbound body the server closes once the response
// starts: reads after its EOF fail.
type closedAfterEOF struct {
	r   io.Reader
	eof bool
}

func (c *closedAfterEOF) Read(p []byte) (int, error) {
	if c.eof {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

func (c *closedAfterEOF) Close() error { return nil }

// TestBodyReaderEOFIsSticky: the transport's extra read after the body must
// see EOF, not the closed body's error, or it drops the upstream connection
// while the response is copied (golang/go#40747).
func TestBodyReaderEOFIsSticky(t *testing.T) {
	var b bodyReader
	b.init(&closedAfterEOF{r: strings.NewReader(`{"x":[1]}`)}, 1<<20)
	got, err := io.ReadAll(&b)
	if err != nil || string(got) != `{"x":[1]}` {
		t.Fatalf("got %q, %v; want the body", got, err)
	}
	for i := 0; i < 3; i++ {
		if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Errorf("read %d after EOF: got %d, %v; want 0, io.EOF", i, n, err)
		}
	}
	if b.failed.Load() != bodyOK {
		t.Errorf("body marked failed after a clean EOF")
	}
}

// countConn counts the writes made on a connection.
type countConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestSmallBodySentInOneWrite: a small request reaches the model server in
// one write, headers and body together, so a server like httpuv parses it
// in one go (net/http flushes the headers first for a streamed body).
func TestSmallBodySentInOneWrite(t *testing.T) {
	var writes atomic.Int64
	tr := NewUpstreamTransport()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countConn{c, &writes}, nil
	}
	g, _, front := newTestGateway(t, Config{Transport: tr})
	g.Update(snapshot(endpoint("ep", dep("blue", okBackend(t, "{}")))))
	const body = `{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5]}`
	for i := 0; i < 3; i++ {
		writes.Store(0)
		resp, _ := call(t, front, http.MethodPost, "/endpoints/ep/score", bearer(testKey), body)
		if resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
		if n := writes.Load(); n != 1 {
			t.Errorf("request %d reached the model server in %d writes, want 1", i, n)
		}
	}
}

// TestMirroredCopyHeaders: a mirrored copy carries the client's own headers
// but not its credential or its connection's hop-by-hop headers.
func TestMirroredCopyHeaders(t *testing.T) {
	got := make(chan http.Header, 64)
	green := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Header.Clone()
	})
	g, _, _ := newTestGateway(t, Config{})
	ep := endpoint("ep", roomy("blue", okBackend(t, "{}")), roomy("green", green))
	ep.Mirror["green"] = 50
	g.Update(snapshot(ep))
	for i := 0; i < 40; i++ {
		serve(g, map[string]string{"X-Custom": "kept", "Proxy-Authorization": "Basic c2VjcmV0", "Connection": "X-Hop", "X-Hop": "dropped"})
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no request was mirrored in 40 at 50 %")
	}
	h := <-got
	if h.Get("X-Custom") != "kept" {
		t.Errorf("X-Custom: got %q, want it kept", h.Get("X-Custom"))
	}
	for _, name := range []string{"Authorization", "Proxy-Authorization", "X-Hop"} {
		if v := h.Get(name); v != "" {
			t.Errorf("the mirrored copy carries %s: %q", name, v)
		}
	}
	if h.Get("X-Request-Id") == "" {
		t.Error("the mirrored copy has no x-request-id")
	}
}
