package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seen is what a handler saw of a request.
type seen struct {
	Method, URI, Host, Proto string
	Header                   string
	Body                     string
	BodyErr                  string
	Trailer                  string
	ContentLength            int64
	TransferEncoding         []string
	Cancelled                bool
}

// recorder is a handler whose answer the request's query picks, and which
// records what it saw.
type recorder struct {
	mu   sync.Mutex
	seen []seen
	fast []bool // served by this package's loop (not compared)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, fast := w.(*response)
	s := seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto,
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding}
	var keys []string
	for k, v := range r.Header {
		keys = append(keys, k+"="+strings.Join(v, "|"))
	}
	sort.Strings(keys)
	s.Header = strings.Join(keys, ";")
	q := r.URL.Query()
	mode := q.Get("mode")
	if mode != "noread" && mode != "closebody" {
		b, err := io.ReadAll(r.Body)
		s.Body = string(b)
		if err != nil {
			s.BodyErr = err.Error()
		}
		s.Trailer = fmt.Sprint(r.Trailer)
	}
	if mode == "closebody" {
		_ = r.Body.Close()
	}
	h := w.Header()
	switch mode {
	case "", "noread", "closebody":
		h.Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok "+strconv.Itoa(len(s.Body)))
	case "cl":
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", "11")
		_, _ = io.WriteString(w, `{"a":[1,2]}`)
	case "sniff":
		_, _ = io.WriteString(w, "<html><body>hi</body></html>")
	case "big":
		h.Set("Content-Type", "text/plain")
		_, _ = w.Write(bytes.Repeat([]byte("x"), 3000))
	case "flush":
		h.Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: 2\n\n")
	case "nocontent":
		w.WriteHeader(http.StatusNoContent)
		_, _ = io.WriteString(w, "not allowed")
	case "notmodified":
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotModified)
	case "close":
		h.Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	case "identity":
		h.Set("Transfer-Encoding", "identity")
		_, _ = io.WriteString(w, "identity")
	case "status":
		w.WriteHeader(599)
		_, _ = io.WriteString(w, "odd")
	case "short":
		h.Set("Content-Length", "10")
		_, _ = io.WriteString(w, "abc")
	case "multi":
		h.Add("X-B", "2")
		h.Add("X-A", "1")
		h.Add("X-A", "line\nbreak")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	case "slow":
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(w, "slow")
	case "brief": // shorter than disconnectAfter: no disconnect watch reads
		time.Sleep(2 * time.Millisecond)
		_, _ = io.WriteString(w, "brief")
	case "wait":
		select {
		case <-r.Context().Done():
			s.Cancelled = true
		case <-time.After(10 * time.Second):
		}
	case "panic":
		panic(http.ErrAbortHandler)
	}
	rec.mu.Lock()
	rec.seen = append(rec.seen, s)
	rec.fast = append(rec.fast, fast)
	rec.mu.Unlock()
}

// isScoring is the test's Fast: paths under /endpoints/.
func isScoring(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/endpoints/") }

// pair is the standard server and the loop, each with its own recorder.
type pair struct {
	std, fast       string
	stdRec, fastRec *recorder
	stdSrv, fastSrv *http.Server
	fastLn          *Listener
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{stdRec: &recorder{}, fastRec: &recorder{}}
	conf := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 5 * time.Second,
			MaxHeaderBytes: 1024, ErrorLog: nil}
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.stdSrv, p.fastSrv = conf(p.stdRec), conf(p.fastRec)
	p.fastLn = NewListener(ln2, p.fastSrv, isScoring)
	go func() { _ = p.stdSrv.Serve(ln1) }()
	go func() { _ = p.fastSrv.Serve(p.fastLn) }()
	p.std, p.fast = ln1.Addr().String(), ln2.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.stdSrv.Shutdown(ctx)
		_ = p.fastSrv.Shutdown(ctx)
		_ = p.fastLn.Shutdown(ctx)
	})
	return p
}

// exchange writes the parts (pausing between them), half-closes and reads
// everything the server sends until it closes.
func exchange(t *testing.T, addr string, parts []string, pause time.Duration) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { _, err := io.Copy(&out, nc); done <- err }()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(pause)
		}
		if _, err := io.WriteString(nc, p); err != nil {
			break // the server closed: what it sent is the answer
		}
	}
	_ = nc.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil && !isReset(err) {
		t.Fatalf("read the answer: %v", err)
	}
	return out.String()
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

func normalize(s string) string { return dateLine.ReplaceAllString(s, "Date: <date>\r") }

const host = "Host: gw.test\r\n"

func TestDifferential(t *testing.T) {
	big := strings.Repeat("b", 300<<10)
	cases := []struct {
		name  string
		parts []string
		pause time.Duration
		// fast: how many requests the loop must have served itself.
		fast int
	}{
		{name: "get", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "post content-length", parts: []string{"POST /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"x\":[1]}"}, fast: 1},
		{name: "body in pieces", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Content-Length: 10\r\n\r\n01234", "56789"}, pause: 20 * time.Millisecond, fast: 1},
		{name: "chunked with trailers", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Sum: 7\r\n\r\n"}, fast: 1},
		{name: "declared trailer", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Trailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nX-Sum: 4\r\n\r\n"}},
		{name: "smuggling content-length and chunked", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "\r\n"}, fast: 2},
		{name: "smuggling two lengths", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"}},
		{name: "smuggling chunked not last", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"}},
		{name: "unsupported transfer-encoding", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"}},
		{name: "bad chunk size", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"}, fast: 1},
		{name: "expect 100-continue", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", "abc"}, pause: 20 * time.Millisecond},
		{name: "expect other", parts: []string{"POST /endpoints/e/score HTTP/1.1\r\n" + host + "Expect: something\r\nContent-Length: 3\r\n\r\nabc"}},
		{name: "http/1.0", parts: []string{"GET /endpoints/e/score HTTP/1.0\r\n\r\n"}},
		{name: "http/1.0 keep-alive", parts: []string{"GET /endpoints/e/score?mode=cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /endpoints/e/score HTTP/1.0\r\n\r\n"}},
		{name: "connection close", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "Connection: close\r\n\r\nGET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}},
		{name: "pipelined", parts: []string{"GET /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "\r\nPOST /endpoints/e/score HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhiGET /endpoints/e/score?mode=big HTTP/1.1\r\n" + host + "\r\n"}, fast: 3},
		{name: "pipelined during a slow answer", parts: []string{"GET /endpoints/e/score?mode=slow HTTP/1.1\r\n" + host + "\r\n", "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "\r\n"}, pause: 10 * time.Millisecond, fast: 2},
		{name: "keep-alive in turn", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n", "GET /endpoints/e/score?mode=multi HTTP/1.1\r\n" + host + "\r\n", "GET /endpoints/e/score?mode=sniff HTTP/1.1\r\n" + host + "\r\n"}, pause: 30 * time.Millisecond, fast: 3},
		{name: "then not scoring", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\nGET /api/v1/things HTTP/1.1\r\n" + host + "\r\nGET /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "not scoring", parts: []string{"GET /studio/ HTTP/1.1\r\n" + host + "\r\n"}},
		{name: "oversized head", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 10<<10) + "\r\n\r\n"}},
		{name: "head just within", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 900) + "\r\n\r\n"}, fast: 1},
		{name: "no host", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n\r\n"}},
		{name: "two hosts", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "Host: other.test\r\n\r\n"}},
		{name: "bad host", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\nHost: a b\r\n\r\n"}},
		{name: "bad header name", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "Bad Name: x\r\n\r\n"}},
		{name: "bad header value", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "X-V: a\x01b\r\n\r\n"}},
		{name: "bare line feeds", parts: []string{"GET /endpoints/e/score HTTP/1.1\n" + host + "\n"}, fast: 1},
		{name: "absolute uri", parts: []string{"GET http://gw.test/endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}},
		{name: "bad method", parts: []string{"G(T /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}},
		{name: "bad version", parts: []string{"GET /endpoints/e/score HTTP/9.9\r\n" + host + "\r\n"}},
		{name: "garbage", parts: []string{"\x16\x03\x01\x00\x05hello\r\n\r\n"}},
		{name: "upgrade", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"}},
		{name: "head method", parts: []string{"HEAD /endpoints/e/score?mode=cl HTTP/1.1\r\n" + host + "\r\nHEAD /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 2},
		{name: "big answer chunked", parts: []string{"GET /endpoints/e/score?mode=big HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "flushed answer", parts: []string{"GET /endpoints/e/score?mode=flush HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "204 and 304", parts: []string{"GET /endpoints/e/score?mode=nocontent HTTP/1.1\r\n" + host + "\r\nGET /endpoints/e/score?mode=notmodified HTTP/1.1\r\n" + host + "\r\n"}, fast: 2},
		{name: "handler closes", parts: []string{"GET /endpoints/e/score?mode=close HTTP/1.1\r\n" + host + "\r\nGET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "identity answer", parts: []string{"GET /endpoints/e/score?mode=identity HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "unknown status", parts: []string{"GET /endpoints/e/score?mode=status HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "short answer", parts: []string{"GET /endpoints/e/score?mode=short HTTP/1.1\r\n" + host + "\r\nGET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 1},
		{name: "body left unread", parts: []string{"POST /endpoints/e/score?mode=noread HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhelloGET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 2},
		{name: "body closed unread", parts: []string{"POST /endpoints/e/score?mode=closebody HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhelloGET /endpoints/e/score HTTP/1.1\r\n" + host + "\r\n"}, fast: 2},
		{name: "large body left unread", parts: []string{"POST /endpoints/e/score?mode=noread HTTP/1.1\r\n" + host + "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big}, fast: 1},
		{name: "handler aborts", parts: []string{"GET /endpoints/e/score?mode=panic HTTP/1.1\r\n" + host + "\r\n"}},
		{name: "partial head", parts: []string{"GET /endpoints/e/score HTTP/1.1\r\nHo"}},
		{name: "nothing", parts: []string{""}},
	}
	p := newPair(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.stdRec.reset()
			p.fastRec.reset()
			want := normalize(exchange(t, p.std, tc.parts, tc.pause))
			got := normalize(exchange(t, p.fast, tc.parts, tc.pause))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answer differs (-standard server +loop):\n%s", diff)
			}
			stdSeen, _ := p.stdRec.take()
			fastSeen, fast := p.fastRec.take()
			if diff := cmp.Diff(stdSeen, fastSeen); diff != "" {
				t.Errorf("the handler saw a different request (-standard server +loop):\n%s", diff)
			}
			n := 0
			for _, f := range fast {
				if f {
					n++
				}
			}
			if n != tc.fast {
				t.Errorf("the loop served %d requests itself, want %d (the rest handed over)", n, tc.fast)
			}
		})
	}
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	rec.seen, rec.fast = nil, nil
	rec.mu.Unlock()
}

// take waits a moment for handlers still recording (an aborted one never
// does) and returns what they saw.
func (rec *recorder) take() ([]seen, []bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen, rec.fast
}

// TestDisconnectCancels: a client that goes away while its request is
// served cancels the request's context, on the loop as on the standard
// server.
func TestDisconnectCancels(t *testing.T) {
	p := newPair(t)
	for _, side := range []struct {
		name string
		addr string
		rec  *recorder
	}{{"standard", p.std, p.stdRec}, {"loop", p.fast, p.fastRec}} {
		t.Run(side.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", side.addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(nc, "POST /endpoints/e/score?mode=wait HTTP/1.1\r\n"+host+"Content-Length: 2\r\n\r\nhi"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			_ = nc.Close()
			deadline := time.Now().Add(8 * time.Second)
			for {
				seen, _ := side.rec.take()
				if len(seen) == 1 {
					if !seen[0].Cancelled {
						t.Fatalf("the handler ran its course: its context was not cancelled when the client left")
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the handler never returned")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// A client that sends its next request while the previous one is served,
// in a packet of its own, gets both answers on the loop: the request that
// came before the loop's wait began is found (wait.go, pipelineGuard) long
// before the idle timeout would end the wait. The handler answers within
// disconnectAfter, so no disconnect watch reads the request's first byte.
func TestPipelinedDuringAnswer(t *testing.T) {
	p := newPair(t) // IdleTimeout 5 s
	nc, err := net.Dial("tcp", p.fast)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second)) // well within the idle timeout
	br := bufio.NewReader(nc)
	for round := range 3 {
		if _, err := io.WriteString(nc, "GET /endpoints/e/score?mode=brief HTTP/1.1\r\n"+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Microsecond) // the first is being served (on a busy machine it may be answered already: then the test proves less, never fails)
		if _, err := io.WriteString(nc, "GET /endpoints/e/score?mode=cl HTTP/1.1\r\n"+host+"\r\n"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, answer %d: %v (the loop did not see the pipelined request)", round, i, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("round %d, answer %d: %s", round, i, res.Status)
			}
		}
	}
	_, fast := p.fastRec.take()
	if len(fast) != 6 || !fast[0] || !fast[5] {
		t.Errorf("the loop served %v, want all 6 requests", fast)
	}
}
