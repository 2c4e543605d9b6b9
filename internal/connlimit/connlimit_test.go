package connlimit

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http2"
)

// server serves h behind a Listener with cfg, over TLS when tlsOn; it
// returns the listener, the base URL and a client that trusts it.
func server(t *testing.T, cfg Config, tlsOn bool, h http.Handler) (*Listener, string, *http.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme, client := "http", &http.Client{Transport: &http.Transport{}}
	if tlsOn {
		// httptest's certificate, and a client that trusts it.
		ts := httptest.NewTLSServer(http.NotFoundHandler())
		cfg.TLS = ts.TLS.Clone()
		cfg.TLS.NextProtos = []string{"h2", "http/1.1"}
		client = ts.Client()
		client.Transport.(*http.Transport).ForceAttemptHTTP2 = false
		client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
		ts.Close()
		scheme = "https"
	}
	l, err := New(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	l.Configure(srv)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		client.CloseIdleConnections()
	})
	return l, scheme + "://" + ln.Addr().String(), client
}

func hello() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = fmt.Fprintf(w, "hello %d", r.ProtoMajor)
	})
}

// dialFrom connects to addr from a loopback source address 127.0.0.<n>.
func dialFrom(t *testing.T, n int, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// get fetches url and checks for a 200.
func get(t *testing.T, client *http.Client, url string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(string(body), "hello") {
		t.Fatalf("GET %s: got %d %q, want 200 hello", url, res.StatusCode, body)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// waitFor polls cond until it holds or 10 s pass. It waits for an event;
// it does not assert on timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// slowloris sends a request head one byte at a time until stop closes.
func slowloris(c net.Conn, stop <-chan struct{}) {
	head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 4096)
	for i := 0; i < len(head); i++ {
		if _, err := c.Write([]byte{head[i]}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Idle connections and slowloris clients, from other addresses, take none
// of what a well-behaved client needs: its requests, on kept-alive and on
// new connections, all succeed; at the connection bound the listener makes
// room by closing what has been silent longest instead of refusing.
func TestFloodsLeaveRoomForOthers(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			const maxConns = 300
			l, base, client := server(t, Config{MaxConns: maxConns, MaxConnsPerAddr: 100}, tlsOn, hello())
			addr := strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://")
			stop := make(chan struct{})
			defer close(stop)

			// 200 silent connections from four addresses, 40 slowloris
			// from a fifth.
			for i := range 200 {
				dialFrom(t, 2+i%4, addr)
			}
			for range 40 {
				c := dialFrom(t, 6, addr)
				if tlsOn {
					cfg := client.Transport.(*http.Transport).TLSClientConfig.Clone()
					cfg.ServerName = "example.com" // httptest's certificate names it
					c = tls.Client(c, cfg)
				}
				go slowloris(c, stop)
			}
			waitFor(t, "240 flood connections counted", func() bool { return value(l.m.open) >= 240 })
			for i := range 50 {
				get(t, client, base+"/keepalive/"+fmt.Sprint(i))
			}
			fresh := &http.Client{Transport: client.Transport.(*http.Transport).Clone()}
			fresh.Transport.(*http.Transport).DisableKeepAlives = true
			for i := range 20 {
				get(t, fresh, base+"/new/"+fmt.Sprint(i))
			}

			// Past the bound: 100 more silent connections make room by
			// closing the oldest silent ones; the client still gets in.
			for i := range 100 {
				dialFrom(t, 7+i%2, addr)
			}
			waitFor(t, "evictions", func() bool { return value(l.m.closed[reasonEvictedSilent]) >= 40 })
			for i := range 20 {
				get(t, fresh, base+"/after/"+fmt.Sprint(i))
				get(t, client, base+"/after-keepalive/"+fmt.Sprint(i))
			}
			if open := value(l.m.open); open > maxConns {
				t.Errorf("%v connections open, bound %d", open, maxConns)
			}
			if n := value(l.m.refused[reasonMaxConns]); n != 0 {
				t.Errorf("%v connections refused with silent ones to close", n)
			}
		})
	}
}

// One address cannot hold more than its share; the refused connections are
// closed at once and the others of that address are kept.
func TestPerAddressLimit(t *testing.T) {
	l, base, client := server(t, Config{MaxConns: 100, MaxConnsPerAddr: 10}, false, hello())
	addr := strings.TrimPrefix(base, "http://")
	var conns []net.Conn
	for range 15 {
		conns = append(conns, dialFrom(t, 9, addr))
	}
	waitFor(t, "5 refusals", func() bool { return value(l.m.refused[reasonPerAddr]) == 5 })
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if closed != 5 {
		t.Errorf("%d of 15 connections from one address were closed, want 5", closed)
	}
	get(t, client, base+"/") // another address is unaffected
}

// A connection that sends nothing is closed after FirstByteTimeout without
// the HTTP server ever seeing it.
func TestFirstByteTimeout(t *testing.T) {
	l, base, _ := server(t, Config{FirstByteTimeout: 50 * time.Millisecond}, false, hello())
	c := dialFrom(t, 1, strings.TrimPrefix(base, "http://"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read from a silent connection: got %v, want EOF (closed by the server)", err)
	}
	waitFor(t, "the timeout counted", func() bool { return value(l.m.closed[reasonFirstByteTimeout]) == 1 })
}

// TLS handshakes: at most MaxHandshakes at once, at most
// MaxHandshakesPerAddr of them from one address; connections that are
// silent or send part of a ClientHello hold no slot.
func TestHandshakeSlots(t *testing.T) {
	var mu sync.Mutex
	inside, maxInside := 0, 0
	perAddr, maxPerAddr := map[string]int{}, 0
	release := make(chan struct{})
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	tlsCfg := ts.TLS.Clone()
	clientTLS := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	clientTLS.ServerName = "example.com" // httptest's certificate names it
	ts.Close()
	cert := tlsCfg.Certificates[0]
	tlsCfg.Certificates = nil
	tlsCfg.NextProtos = []string{"http/1.1"}
	tlsCfg.GetCertificate = func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		host, _, _ := net.SplitHostPort(hi.Conn.RemoteAddr().String())
		mu.Lock()
		inside++
		perAddr[host]++
		maxInside, maxPerAddr = max(maxInside, inside), max(maxPerAddr, perAddr[host])
		mu.Unlock()
		<-release
		mu.Lock()
		inside--
		perAddr[host]--
		mu.Unlock()
		return &cert, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(ln, Config{TLS: tlsCfg, MaxHandshakes: 2, MaxHandshakesPerAddr: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: hello(), ReadHeaderTimeout: 10 * time.Second}
	l.Configure(srv)
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	addr := ln.Addr().String()

	// Silent connections and half a ClientHello hold no slot.
	for range 20 {
		dialFrom(t, 20, addr)
	}
	for range 5 {
		c := dialFrom(t, 21, addr)
		_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a 512-byte record, 1 byte of it
	}

	// Ten real handshakes from two addresses.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(30+i%2))}}
			raw, err := d.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer raw.Close()
			c := tls.Client(raw, clientTLS)
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			errs <- c.Handshake()
		}()
	}
	waitFor(t, "two handshakes inside", func() bool { mu.Lock(); defer mu.Unlock(); return inside == 2 })
	time.Sleep(100 * time.Millisecond) // room for a third to (wrongly) get in
	if got := value(l.m.handshakes); got != 2 {
		t.Errorf("handshakes in progress: got %v, want 2 (silent and partial connections hold none)", got)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("handshake: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInside > 2 || maxPerAddr > 1 {
		t.Errorf("at most %d handshakes at once and %d from one address; bounds 2 and 1", maxInside, maxPerAddr)
	}
	if got := value(l.m.handshakes); got != 0 {
		t.Errorf("handshakes in progress after all finished: %v", got)
	}
}

// Over TLS the server speaks HTTP/2 and announces its stream limit.
func TestHTTP2(t *testing.T) {
	_, base, client := server(t, Config{MaxStreams: 37}, true, hello())
	tr := client.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	tr.TLSClientConfig.NextProtos = []string{"h2", "http/1.1"}
	h2client := &http.Client{Transport: tr}
	res, err := h2client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.ProtoMajor != 2 || string(body) != "hello 2" {
		t.Fatalf("got %s %q, want HTTP/2 and hello 2", res.Proto, body)
	}

	// The SETTINGS frame carries MaxConcurrentStreams.
	cfg := tr.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, bufio.NewReader(c))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame: got %T, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 37 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS: got %d (%v), want 37", v, ok)
	}
}

// Close ends Accept and closes connections not handed to the server.
func TestClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(ln, Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, 1, ln.Addr().String())
	waitFor(t, "the connection counted", func() bool { return value(l.m.open) == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: got %v, want net.ErrClosed", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a silent connection after Close: got %v, want EOF", err)
	}
	if got := value(l.m.open); got != 0 {
		t.Errorf("open after Close: %v", got)
	}
}

// A request head that trickles in is paced (read once a second once it has
// come in small pieces for a second) and still served when it completes;
// clients that send whole heads are never paced.
func TestSlowHeadsPaced(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			l, base, client := server(t, Config{}, tlsOn, hello())
			addr := strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://")
			for i := range 30 { // kept alive, with pauses: whole heads
				get(t, client, base+"/whole/"+fmt.Sprint(i))
				time.Sleep(20 * time.Millisecond)
			}
			if n := value(l.m.slowHeads); n != 0 {
				t.Fatalf("%v heads paced for clients that send them whole", n)
			}
			c := dialFrom(t, 3, addr)
			if tlsOn {
				cfg := client.Transport.(*http.Transport).TLSClientConfig.Clone()
				cfg.ServerName = "example.com"
				c = tls.Client(c, cfg)
			}
			head := "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Slow: " + strings.Repeat("a", 60) + "\r\n\r\n"
			for i := 0; i < len(head); i++ {
				if _, err := c.Write([]byte{head[i]}); err != nil {
					t.Fatalf("byte %d: %v", i, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			if !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), "hello 1") {
				t.Fatalf("slow head: got %q, %v; want a 200 with hello 1", b, err)
			}
			if n := value(l.m.slowHeads); n != 1 {
				t.Errorf("%v slow heads paced, want 1", n)
			}
		})
	}
}

// HTTP/2 frames are small by nature: a connection that sends only PINGs
// for over a second before its first request is never paced.
func TestHTTP2NeverPaced(t *testing.T) {
	l, base, client := server(t, Config{}, true, hello())
	cfg := client.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = "example.com"
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, err := (&http2.Transport{}).NewClientConn(c)
	if err != nil {
		t.Fatal(err)
	}
	for range 15 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cc.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", base+"/after-pings", nil)
	res, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if string(body) != "hello 2" {
		t.Fatalf("got %q, want hello 2", body)
	}
	if n := value(l.m.slowHeads); n != 0 {
		t.Errorf("%v HTTP/2 connections paced, want none", n)
	}
}
