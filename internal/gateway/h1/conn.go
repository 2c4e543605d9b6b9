package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/plumbline/plumbline/internal/connlimit"
)

const (
	// disconnectAfter is how long a handler runs before the loop watches
	// for its client going away. Most scoring requests are answered
	// sooner and never pay for the watch.
	disconnectAfter = 5 * time.Millisecond
	// closeGrace is how long a connection closing after an unread request
	// body lingers, so that the client reads the response before the
	// reset (net/http's rstAvoidanceDelay).
	closeGrace = 500 * time.Millisecond
)

// badRequest is net/http's server's answer to a request it cannot parse.
const badRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"

// aLongTimeAgo is a deadline that makes blocked reads return at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one plain-TCP connection on the loop.
type conn struct {
	l      *Listener
	nc     net.Conn
	cl     *connlimit.Conn // nc, if the listener is connlimit's
	rc     syscall.RawConn // nil if nc has none
	ctx    context.Context // the server's context values
	remote string

	src source
	br  *bufio.Reader
	res response
	// body wraps the current request's body: a new one per request, so
	// that a handler's goroutine reading its body after the handler
	// returned gets an error, never the next request's body.
	body *reqBody
	// out is the response bytes not sent yet.
	out  []byte
	werr error
	// idle is set while the connection waits for a request with nothing
	// read (guarded by Listener.mu).
	idle bool

	watch watch

	// writeAndWait's state; waitFn is it bound once.
	waitFn  func(fd uintptr) bool
	wrote   bool
	writeN  int
	writeEr error
	stop    bool
	peekFn  func(fd uintptr) bool
	peekBuf [1]byte
	peeked  bool
	// pipelines is set once the client sent a request before the previous
	// response (wait.go).
	pipelines bool

	clen [20]byte
	date [29]byte
}

func newConn(l *Listener, nc net.Conn) *conn {
	c := &conn{l: l, nc: nc, remote: nc.RemoteAddr().String()}
	c.cl = connlimit.Of(nc)
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	c.src.c = c
	c.src.limit = -1
	c.br = bufio.NewReaderSize(&c.src, 4096)
	c.waitFn = c.writeInRead
	c.peekFn = c.peekInRead
	c.watch.c = c
	c.watch.done = make(chan struct{}, 1)
	return c
}

func (c *conn) hook(s http.ConnState) {
	if h := c.l.srv.ConnState; h != nil {
		h(c.nc, s)
	}
}

// serve runs the connection's loop until it ends or hands the connection
// over.
func (c *conn) serve() {
	defer c.l.forget(c)
	srv := c.l.srv
	ctx := context.WithValue(context.Background(), http.ServerContextKey, srv)
	c.ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.nc.LocalAddr())
	c.hook(http.StateNew)
	for {
		var deadline time.Time
		if d := headerTimeout(srv); d > 0 {
			deadline = time.Now().Add(d)
		}
		_ = c.nc.SetReadDeadline(deadline)
		c.src.begin(c.br, maxHeaderBytes(srv)+4096)
		req, err := http.ReadRequest(c.br)
		c.src.end()
		if err != nil {
			var ne net.Error
			switch {
			case len(c.src.rec) == 0 || (errors.As(err, &ne) && ne.Timeout()):
				// The client closed or went silent: net/http closes
				// without a word too.
				c.close()
			case !deadline.IsZero() && !time.Now().Before(deadline):
				// The deadline cut a header line short, which the parser
				// took for a malformed one. net/http answers that with a
				// 400; handing the connection over would give the client
				// a second ReadHeaderTimeout first.
				_, _ = io.WriteString(c.nc, badRequest)
				c.close()
			default:
				c.handOver()
			}
			return
		}
		if !c.fits(req) {
			c.handOver()
			return
		}
		c.hook(http.StateActive)
		if !c.serveRequest(req) {
			return
		}
		if !c.awaitNext() {
			c.close()
			return
		}
	}
}

// fits reports whether req is one this loop serves: net/http's server
// would accept it (its checks beyond http.ReadRequest), it is of the
// common shape, and Fast wants it. The standard server gets the others.
func (c *conn) fits(req *http.Request) bool {
	if req.ProtoMajor != 1 || req.ProtoMinor != 1 || req.Close || req.Method == "CONNECT" || req.Method == "PRI" {
		return false
	}
	if !strings.HasPrefix(req.RequestURI, "/") {
		return false
	}
	// http.ReadRequest refused two Host headers and took the one out of
	// the header map: an empty Host is a missing one or an empty one,
	// which the standard server tells apart.
	if req.Host == "" || !httpguts.ValidHostHeader(req.Host) {
		return false
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
		switch k {
		case "Expect", "Upgrade", "Te", "Trailer":
			return false
		}
	}
	if req.Trailer != nil {
		return false
	}
	if c.l.fast == nil || !c.l.fast(req) {
		return false
	}
	return true
}

// serveRequest runs the handler and sends its response. It reports
// whether the connection goes on.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	if req.Trailer == nil && len(req.TransferEncoding) > 0 {
		// The body reader merges trailers into the request ReadRequest
		// made; the handler's is a copy (WithContext): share the map.
		req.Trailer = make(http.Header)
	}
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	c.body = newReqBody(req.Body, req.ContentLength)
	if req.Body != http.NoBody {
		req.Body = c.body
	}
	w := &c.res
	w.reset(c, req)
	c.l.served.Add(1)
	c.watch.arm(cancel)
	ok := c.runHandler(w, req)
	gotByte := c.watch.disarm()
	if gotByte != nil {
		c.src.extra = append(c.src.extra, gotByte...)
	}
	if !ok {
		c.close()
		return false
	}
	w.finish()
	_ = c.body.Close() // reads after the handler returned fail
	keep = w.reuse() && c.werr == nil
	if !keep {
		c.flushOut()
		if w.limitHit || c.body.early {
			c.lingerClose()
		} else {
			c.close()
		}
		return false
	}
	return true
}

// runHandler calls the handler, reporting false if it panicked.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.logf("http: panic serving %v: %v\n%s", c.remote, err, buf)
			}
			ok = false
		}
	}()
	h := c.l.srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, req)
	return true
}

func (c *conn) logf(format string, args ...any) {
	if l := c.l.srv.ErrorLog; l != nil {
		l.Printf(format, args...)
	}
}

// handOver gives the connection, with every byte read of the current
// request replayed first, to the standard server.
func (c *conn) handOver() {
	rec := c.src.rec
	c.src.rec = nil
	// The standard server reports the connection New again; Closed here
	// ends this loop's part in the hooks (connlimit's and the drain's
	// follow the new server's states from there).
	c.hook(http.StateClosed)
	_ = c.nc.SetReadDeadline(time.Time{})
	if c.cl != nil {
		c.cl.Replay(rec)
		c.l.handOver(c.nc)
		return
	}
	c.l.handOver(&replayConn{Conn: c.nc, pending: rec})
}

func (c *conn) close() {
	_ = c.nc.Close()
	c.hook(http.StateClosed)
}

// lingerClose half-closes, waits for the client to read the response and
// closes (net/http's closeWriteAndWait).
func (c *conn) lingerClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(closeGrace)
	c.close()
}

// flushOut sends the out buffer now.
func (c *conn) flushOut() {
	if len(c.out) == 0 {
		return
	}
	if c.werr == nil {
		if _, err := c.nc.Write(c.out); err != nil {
			c.werr = err
			c.res.werr = err
		}
	}
	c.out = c.out[:0]
	if cap(c.out) > 4*flushAt {
		c.out = nil
	}
}

func headerTimeout(srv *http.Server) time.Duration {
	if srv.ReadHeaderTimeout > 0 {
		return srv.ReadHeaderTimeout
	}
	return srv.ReadTimeout
}

func idleTimeout(srv *http.Server) time.Duration {
	if srv.IdleTimeout > 0 {
		return srv.IdleTimeout
	}
	return srv.ReadTimeout
}

func maxHeaderBytes(srv *http.Server) int64 {
	if srv.MaxHeaderBytes > 0 {
		return int64(srv.MaxHeaderBytes)
	}
	return http.DefaultMaxHeaderBytes
}

// source is what the connection's bufio.Reader reads from: a byte the
// disconnect watch kept first, then the socket. While a head is read it
// records every byte (the replay of a hand-over) and bounds them
// (MaxHeaderBytes, as net/http bounds them).
type source struct {
	c         *conn
	extra     []byte
	recording bool
	rec       []byte
	limit     int64 // -1: none
}

var errHeadTooLarge = errors.New("request head too large")

// begin starts a head: what br holds already is its start.
func (s *source) begin(br *bufio.Reader, limit int64) {
	s.rec = s.rec[:0]
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		s.rec = append(s.rec, b...)
	}
	s.recording, s.limit = true, limit
}

func (s *source) end() {
	s.recording, s.limit = false, -1
	if cap(s.rec) > 64<<10 {
		s.rec = nil
	}
}

func (s *source) Read(p []byte) (int, error) {
	if len(s.extra) > 0 {
		n := copy(p, s.extra)
		if s.recording {
			s.rec = append(s.rec, p[:n]...)
		}
		s.extra = s.extra[n:]
		return n, nil
	}
	if s.limit == 0 {
		return 0, errHeadTooLarge
	}
	if s.limit > 0 && int64(len(p)) > s.limit {
		p = p[:s.limit]
	}
	n, err := s.c.nc.Read(p)
	if s.limit > 0 {
		s.limit -= int64(n)
	}
	if s.recording && n > 0 {
		s.rec = append(s.rec, p[:n]...)
	}
	return n, err
}

// reqBody is the handler's request body: it notes what net/http's server
// notes of it (bytes read, end seen, closed early) and never reads on
// Close.
type reqBody struct {
	inner  io.ReadCloser
	length int64 // the request's ContentLength
	n      int64
	sawEOF atomic.Bool // read by the disconnect watch
	closed bool
	// early: closed with more than maxPostHandlerRead left unread.
	early bool
}

func newReqBody(inner io.ReadCloser, length int64) *reqBody {
	b := &reqBody{inner: inner, length: length}
	b.sawEOF.Store(inner == http.NoBody)
	return b
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.inner.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.sawEOF.Store(true)
	}
	return n, err
}

// Close reads what is left, up to maxPostHandlerRead, as net/http's
// server does: more than that and the connection closes after the
// response.
func (b *reqBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.sawEOF.Load() {
		return nil
	}
	if b.length > 0 && b.length-b.n > maxPostHandlerRead {
		b.early = true
		return nil
	}
	n, err := io.CopyN(io.Discard, b.inner, maxPostHandlerRead)
	if err == io.EOF {
		b.sawEOF.Store(true)
		err = nil
	}
	if n == maxPostHandlerRead {
		b.early = true
	}
	return err
}

// replayConn reads pending before its connection (for listeners other
// than connlimit's, in tests).
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// watch cancels a request's context when its client goes away, once the
// handler has run for disconnectAfter and read the whole body: a
// goroutine reads the connection then. A byte it gets is the start of the
// next request, kept for it.
type watch struct {
	c      *conn
	mu     sync.Mutex // protects the fields below
	t      *time.Timer
	cancel context.CancelFunc
	state  int
	got    [1]byte
	gotN   int
	done   chan struct{} // the reading goroutine finished
}

const (
	watchOff = iota
	watchArmed
	watchReading
	watchStopping
	watchRead
)

func (w *watch) arm(cancel context.CancelFunc) {
	w.mu.Lock()
	w.cancel, w.state, w.gotN = cancel, watchArmed, 0
	if w.t == nil {
		w.t = time.AfterFunc(disconnectAfter, w.fire)
	} else {
		w.t.Reset(disconnectAfter)
	}
	w.mu.Unlock()
}

func (w *watch) fire() {
	w.mu.Lock()
	if w.state != watchArmed {
		w.mu.Unlock()
		return
	}
	if !w.c.body.sawEOF.Load() {
		w.t.Reset(disconnectAfter) // the handler still reads the body
		w.mu.Unlock()
		return
	}
	// The head's deadline still holds: lift it, under mu so that disarm's
	// deadline in the past, which stops the read, always comes after.
	_ = w.c.nc.SetReadDeadline(time.Time{})
	w.state = watchReading
	w.mu.Unlock()
	n, err := w.c.nc.Read(w.got[:])
	w.mu.Lock()
	stopping := w.state == watchStopping
	w.state, w.gotN = watchRead, n
	if n == 0 && err != nil && !stopping {
		w.cancel() // the client closed or reset: the handler may stop
	}
	w.mu.Unlock()
	w.done <- struct{}{}
}

// disarm stops the watch after the handler and returns the byte it read,
// if any.
func (w *watch) disarm() []byte {
	w.t.Stop()
	w.mu.Lock()
	switch w.state {
	case watchArmed:
		w.state = watchOff
		w.mu.Unlock()
		return nil
	case watchReading:
		w.state = watchStopping
		w.mu.Unlock()
		_ = w.c.nc.SetReadDeadline(aLongTimeAgo)
	default: // watchRead
		w.mu.Unlock()
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = watchOff
	if w.gotN > 0 {
		return w.got[:w.gotN]
	}
	return nil
}
