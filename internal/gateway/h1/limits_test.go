package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/plumbline/plumbline/internal/connlimit"
)

// limited serves rec on the loop behind connlimit, as plumbline serve does
// with --http1 fast, with short header and idle timeouts.
func limited(t *testing.T, rec *recorder, headTimeout time.Duration) (addr string, reg *prometheus.Registry) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	guard, err := connlimit.New(inner, connlimit.Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: headTimeout, IdleTimeout: 400 * time.Millisecond}
	guard.Configure(srv)
	ln := NewListener(guard, srv, isScoring)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = ln.Shutdown(ctx)
	})
	return inner.Addr().String(), reg
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += counterValue(m)
			}
			return sum
		}
	}
	return 0
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// readUntilClosed reads what the server sends until it closes the
// connection (the client's deadline is far beyond the server's timeouts).
func readUntilClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("the server did not close the connection: %v (read %q)", err, b)
	}
	return string(b)
}

// The keep-alive idle timeout closes a connection on the loop that sends
// nothing after its answer; ReadHeaderTimeout one whose head stops coming.
func TestTimeoutsOnTheLoop(t *testing.T) {
	rec := &recorder{}
	addr, _ := limited(t, rec, time.Second)
	t.Run("idle", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n"+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		got := readUntilClosed(t, c)
		if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, `{"a":[1,2]}`) {
			t.Errorf("got %q, want one 200 answer and then the connection closed", got)
		}
	})
	t.Run("head", func(t *testing.T) {
		// net/http's server, with the same timeouts, for comparison.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		std := &http.Server{Handler: &recorder{}, ReadHeaderTimeout: time.Second, IdleTimeout: 400 * time.Millisecond}
		go func() { _ = std.Serve(ln) }()
		defer std.Close()
		for _, head := range []string{"Ho", "Host: x\r\n"} { // cut mid-line, and between lines
			answers := map[string]string{}
			for side, a := range map[string]string{"standard": ln.Addr().String(), "loop": addr} {
				c, err := net.Dial("tcp", a)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(c, "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n"+host+"\r\nGET /endpoints/e/score HTTP/1.1\r\n"+head); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				answers[side] = normalize(readUntilClosed(t, c))
				t.Logf("%s, head cut after %q: closed after %s", side, head, time.Since(start).Round(10*time.Millisecond))
				c.Close()
			}
			if answers["standard"] != answers["loop"] {
				t.Errorf("head cut after %q: the loop answered %q, net/http's server %q", head, answers["loop"], answers["standard"])
			}
		}
	})
	_, fast := rec.take()
	if len(fast) != 3 || !fast[0] || !fast[1] || !fast[2] {
		t.Errorf("the loop served %v, want the three first requests", fast)
	}
}

// connlimit's slow-head pacing holds on the loop: a head that trickles in
// for over a second is paced; heads sent whole on a kept-alive connection
// are not.
func TestSlowHeadPacedOnTheLoop(t *testing.T) {
	rec := &recorder{}
	addr, reg := limited(t, rec, 10*time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 { // whole heads, kept alive, with pauses
		if _, err := fmt.Fprintf(c, "GET /endpoints/e/score?mode=cl&i=%d HTTP/1.1\r\n%s\r\n", i, host); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := counter(t, reg, "plumbline_http_slow_heads_total"); n != 0 {
		t.Fatalf("%v heads paced for a client that sends them whole", n)
	}
	s, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A first request whole, so that the slow head is the loop's.
	if _, err := io.WriteString(s, "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n"+host+"\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Read(buf); err != nil {
		t.Fatal(err)
	}
	head := "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "X-Slow: " + strings.Repeat("a", 30) + "\r\n\r\n"
	for i := 0; i < len(head); i++ {
		if _, err := s.Write([]byte{head[i]}); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := s.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("slow head: got %q, %v; want a 200", buf[:n], err)
	}
	if n := counter(t, reg, "plumbline_http_slow_heads_total"); n != 1 {
		t.Errorf("%v slow heads paced, want 1", n)
	}
	_, fast := rec.take()
	for i, f := range fast {
		if !f {
			t.Errorf("request %d was handed over, want all on the loop", i)
		}
	}
}

// Shutdown answers the request in flight (with Connection: close), closes
// a connection waiting for its next request, and returns once both are
// done.
func TestShutdownAnswersInFlight(t *testing.T) {
	p := newPair(t)
	busy, err := net.Dial("tcp", p.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	idle, err := net.Dial("tcp", p.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleR := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET /endpoints/e/score HTTP/1.1\r\n"+host+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(idleR, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	if _, err := io.WriteString(busy, "GET /endpoints/e/score?mode=slow HTTP/1.1\r\n"+host+"\r\n"); err != nil {
		t.Fatal(err)
	}
	// Wait until the slow request is being served.
	deadline := time.Now().Add(10 * time.Second)
	for p.fastLn.Served() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached the handler")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.fastLn.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err = http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in flight: %v, want its answer", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "slow" || !res.Close {
		t.Errorf("the request in flight: %d %q close=%v, want 200 slow with Connection: close", res.StatusCode, b, res.Close)
	}
	if _, err := idleR.ReadByte(); err == nil {
		t.Error("the idle connection got bytes after Shutdown, want it closed")
	}
}
