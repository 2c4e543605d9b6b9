package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend is an httptest server that counts the connections it
// accepted.
func countingBackend(t *testing.T, h http.HandlerFunc) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String(), conns
}

// The gateway's own client writes each small request, head and body, in one
// write (larger buffered bodies go in one writev, which this wrapped
// connection cannot show), and reuses one kept-alive connection for
// sequential requests.
func TestDirectOneWriteAndKeepAlive(t *testing.T) {
	var writes atomic.Int64
	addr, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	g, _, front := newTestGateway(t, Config{})
	dial := g.up.dialConn
	g.up.dialConn = func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := dial(ctx, network, a)
		if err != nil {
			return nil, err
		}
		return countConn{c, &writes}, nil
	}
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))
	for _, size := range []int{10, inlineBodyBytes + 1, bufferBodyBytes} {
		body := strings.Repeat("x", size)
		for i := 0; i < 3; i++ {
			writes.Store(0)
			res, got := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), body)
			if res.StatusCode != 200 || got != body {
				t.Fatalf("size %d: got %d and %d bytes, want 200 and the body echoed", size, res.StatusCode, len(got))
			}
			if n := writes.Load(); size <= inlineBodyBytes && n != 1 {
				t.Errorf("size %d, request %d: %d writes to the instance, want 1", size, i, n)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the instance saw %d connections for sequential requests, want 1", n)
	}
}

// TCP_QUICKACK is armed only when a response arrives in parts: never for a
// server that answers in one segment, and for one that writes head and body
// apart with Nagle on (as httpuv does), on the reads that wait for the rest.
func TestDirectQuickAckOnlyForSplitResponses(t *testing.T) {
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", okBackend(t, `{"prediction":[1]}`)))))
	for range 50 {
		if res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}"); res.StatusCode != 200 {
			t.Fatalf("got %d, want 200", res.StatusCode)
		}
	}
	if n := g.up.quickAcks.Load(); n != 0 {
		t.Errorf("one-segment answers: QUICKACK armed %d times, want 0", n)
	}

	g.Update(snapshot(endpoint("ep", dep("blue", nagleAddr(t)))))
	for range 50 {
		res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
		if res.StatusCode != 200 || body != `{"msg":"hi"}` {
			t.Fatalf("got %d %q, want 200 and the body", res.StatusCode, body)
		}
	}
	if n := g.up.quickAcks.Load(); n == 0 {
		t.Error("split answers (head, then body held back by Nagle): QUICKACK never armed")
	}
}

// nagleAddr serves like httpuv: Nagle on, head and body in two writes.
func nagleAddr(t *testing.T) string {
	addr, _ := rawBackend(t, true, func(c net.Conn, _ *http.Request) bool {
		body := `{"msg":"hi"}`
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"); err != nil {
			return false
		}
		_, err := io.WriteString(c, body)
		return err == nil
	})
	return addr
}

// rawBackend answers every request on a connection with respond, which
// writes raw bytes, with Nagle's algorithm on if nagle; it reports when it
// has closed a connection.
func rawBackend(t *testing.T, nagle bool, respond func(c net.Conn, req *http.Request) (keep bool)) (addr string, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	closed = make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if nagle {
				_ = c.(*net.TCPConn).SetNoDelay(false)
			}
			go func() {
				defer func() {
					_ = c.Close()
					select {
					case closed <- struct{}{}:
					default: // nobody counts
					}
				}()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if !respond(c, req) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), closed
}

// An instance that closes a kept-alive connection without saying so: the
// next request, after the connection sat idle, goes on a new connection
// instead of failing.
func TestDirectIdleConnectionClosedByInstance(t *testing.T) {
	addr, closed := rawBackend(t, false, func(c net.Conn, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
		return false // closes after the response, without Connection: close
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))
	for i := range 3 {
		if res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}"); res.StatusCode != 200 || body != "{}" {
			t.Fatalf("request %d: got %d %q, want 200 {}", i, res.StatusCode, body)
		}
		<-closed                                     // the instance has closed the connection…
		time.Sleep(staleAfter + 10*time.Millisecond) // …and it has sat idle long enough to be checked
	}
}

// Framing and headers of answers: chunked bodies, trailers, HEAD, 204,
// Connection: close, 1xx before the answer, duplicate and lower-case
// headers, hop-by-hop headers.
func TestDirectResponseShapes(t *testing.T) {
	addr, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		switch r.URL.Query().Get("shape") {
		case "chunked":
			h.Set("Trailer", "X-Sum")
			for i := range 3 {
				_, _ = io.WriteString(w, "part"+strconv.Itoa(i)+";")
				w.(http.Flusher).Flush()
			}
			h.Set("X-Sum", "3")
		case "nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "close":
			h.Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case "early-hints":
			h.Set("Link", "</x.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "after hints")
		case "headers":
			h["set-cookie"] = []string{"a=1", "b=2"} // not canonical: sent as given
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Connection", "X-Private")
			h.Set("X-Private", "hop")
			h.Set("X-Model", "m1")
			_, _ = io.WriteString(w, "{}")
		default:
			_, _ = io.WriteString(w, "plain")
		}
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))

	res, body := call(t, front, "POST", "/endpoints/ep/score?shape=chunked", bearer(testKey), "{}")
	if res.StatusCode != 200 || body != "part0;part1;part2;" {
		t.Errorf("chunked: got %d %q", res.StatusCode, body)
	}
	res, body = call(t, front, "HEAD", "/endpoints/ep/score", bearer(testKey), "")
	if res.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: got %d %q", res.StatusCode, body)
	}
	res, body = call(t, front, "POST", "/endpoints/ep/score?shape=nocontent", bearer(testKey), "{}")
	if res.StatusCode != 204 || body != "" {
		t.Errorf("204: got %d %q, want 204 and no body", res.StatusCode, body)
	}
	if before := conns.Load(); before != 1 {
		t.Errorf("chunked, HEAD and 204 used %d connections, want 1", before)
	}
	res, body = call(t, front, "POST", "/endpoints/ep/score?shape=early-hints", bearer(testKey), "{}")
	if res.StatusCode != 200 || body != "after hints" {
		t.Errorf("103 then 200: got %d %q", res.StatusCode, body)
	}
	res, body = call(t, front, "POST", "/endpoints/ep/score?shape=headers", bearer(testKey), "{}")
	if got := res.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie: got %q, want both values", got)
	}
	for _, hop := range []string{"Keep-Alive", "X-Private"} {
		if v := res.Header.Get(hop); v != "" {
			t.Errorf("hop-by-hop %s reached the client: %q", hop, v)
		}
	}
	if res.Header.Get("X-Model") != "m1" {
		t.Errorf("X-Model: got %q, want m1", res.Header.Get("X-Model"))
	}
	n := conns.Load()
	res, body = call(t, front, "POST", "/endpoints/ep/score?shape=close", bearer(testKey), "{}")
	if res.StatusCode != 200 || body != "bye" {
		t.Errorf("close: got %d %q", res.StatusCode, body)
	}
	call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
	if got := conns.Load(); got != n+1 {
		t.Errorf("after Connection: close the next request used %d new connections, want 1", got-n)
	}
}

// Malformed answers are 502s, and a request after one works.
func TestDirectMalformedResponse(t *testing.T) {
	for name, raw := range map[string]string{
		"garbage":            "NOT HTTP\r\n\r\n",
		"bad length":         "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"folded header":      "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n",
		"unknown coding":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"space before colon": "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
		"closed":             "",
	} {
		t.Run(name, func(t *testing.T) {
			addr, _ := rawBackend(t, false, func(c net.Conn, _ *http.Request) bool {
				_, _ = io.WriteString(c, raw)
				return false
			})
			g, _, front := newTestGateway(t, Config{})
			g.Update(snapshot(endpoint("ep", dep("blue", addr))))
			res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
			if res.StatusCode != 502 {
				t.Fatalf("got %d %q, want 502", res.StatusCode, body)
			}
			if res.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q for a %d-byte error body: the bad answer's headers leaked", res.Header.Get("Content-Length"), len(body))
			}
		})
	}
}

// What the instance receives: the client's headers minus its credential and
// hop-by-hop headers, the tracing ids, X-Forwarded-*, the escaped scoring
// path and the query.
func TestDirectRequestHeaders(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = r.Clone(context.Background())
		mu.Unlock()
	})
	d := dep("blue", addr)
	d.ScoringPath = "/a b/score"
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", d)))
	res, _ := call(t, front, "POST", "/endpoints/ep/score?x=1&y=%20", map[string]string{
		"Authorization": "Bearer " + testKey, "X-Custom": "kept", "Connection": "X-Hop", "X-Hop": "dropped",
		"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6", "Proxy-Authorization": "Basic c2VjcmV0",
	}, `{"a":1}`)
	if res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.URL.Path != "/a b/score" || got.URL.EscapedPath() != "/a%20b/score" || got.URL.RawQuery != "x=1&y=%20" {
		t.Errorf("path %q (raw %q), query %q", got.URL.Path, got.URL.RawPath, got.URL.RawQuery)
	}
	want := map[string]string{
		"X-Custom": "kept", "X-Hop": "", "Authorization": "", "Proxy-Authorization": "", "Forwarded": "",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "Content-Type": "",
	}
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("%s: got %q, want %q", k, g, v)
		}
	}
	if got.Header.Get("X-Forwarded-Host") == "" || got.Header.Get("X-Request-Id") != res.Header.Get("X-Request-Id") {
		t.Errorf("X-Forwarded-Host %q, X-Request-Id %q (client saw %q)", got.Header.Get("X-Forwarded-Host"), got.Header.Get("X-Request-Id"), res.Header.Get("X-Request-Id"))
	}
	if got.ContentLength != 7 || got.Host != addr {
		t.Errorf("Content-Length %d, Host %q; want 7, %q", got.ContentLength, got.Host, addr)
	}
}

// A client that leaves while the model works closes the connection to the
// instance, which sees its request cancelled, and the slot is freed.
func TestDirectClientGoneCancelsUpstream(t *testing.T) {
	gt := newGate()
	addr := backend(t, gt.ServeHTTP)
	g, _, front := newTestGateway(t, Config{})
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	g.Update(snapshot(endpoint("ep", d)))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", front.URL+"/endpoints/ep/score", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+testKey)
		res, err := front.Client().Do(req)
		if err == nil {
			_ = res.Body.Close()
		}
		errc <- err
	}()
	<-gt.arrived
	cancel()
	<-errc
	waitFor(t, "the instance to see the cancellation and the slot to free", func() bool {
		gt.mu.Lock()
		defer gt.mu.Unlock()
		return gt.active == 0 && g.InFlight("ep", "blue", "blue-0") == 0
	})
}

// A unix-socket instance ("unix:" + path) is reached over the socket, with
// Host: localhost.
func TestDirectUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "inst.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var host atomic.Value
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		_, _ = io.WriteString(w, "over unix")
	})}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", "unix:"+sock))))
	for range 2 {
		res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
		if res.StatusCode != 200 || body != "over unix" {
			t.Fatalf("got %d %q, want 200 \"over unix\"", res.StatusCode, body)
		}
	}
	if h := host.Load(); h != "localhost" {
		t.Errorf("Host: got %v, want localhost", h)
	}
	// A streamed body (no Content-Length) goes through ReverseProxy, which
	// reaches the socket too.
	pr, pw := io.Pipe()
	go func() { _, _ = io.WriteString(pw, `{"streamed":true}`); _ = pw.Close() }()
	req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep/score", pr)
	req.Header.Set("Authorization", "Bearer "+testKey)
	res, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || string(b) != "over unix" || host.Load() != "localhost" {
		t.Errorf("streamed: got %d %q (Host %v), want 200 \"over unix\"", res.StatusCode, b, host.Load())
	}
}

// Upgrades and streamed bodies go through ReverseProxy, which still works.
func TestUpgradeThroughReverseProxy(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo: " + line)
		_ = brw.Flush()
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))
	c, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /endpoints/ep/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testKey+"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: got %v, %v; want 101", res, err)
	}
	_, _ = io.WriteString(c, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo: hello\n" {
		t.Errorf("after the upgrade: got %q", line)
	}
}

// Heads larger than the read buffer, both ways, pass whole; the
// connection does not keep their buffers.
func TestDirectLargeHeads(t *testing.T) {
	big := strings.Repeat("b", 100<<10)
	var got atomic.Value
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Big"))
		w.Header().Set("X-Big-Answer", big)
		_, _ = io.WriteString(w, "{}")
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))
	for range 2 {
		res, body := call(t, front, "POST", "/endpoints/ep/score", map[string]string{"Authorization": "Bearer " + testKey, "X-Big": big}, "{}")
		if res.StatusCode != 200 || body != "{}" || res.Header.Get("X-Big-Answer") != big || got.Load() != big {
			t.Fatalf("got %d %q, answer header %d bytes, request header %d bytes; want 200 and both whole", res.StatusCode, body,
				len(res.Header.Get("X-Big-Answer")), len(got.Load().(string)))
		}
	}
}
