package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The gateway's own HTTP/1.1 client to instances.
//
// httputil.ReverseProxy over http.Transport hands every request to a writer
// goroutine and every response to a reader goroutine of its connection, and
// allocates a request, a response and their header maps on the way; the
// profile (docs/benchmarks.md) showed that costing more CPU than the rest of
// the gateway together. This client does the whole exchange on the request's
// own goroutine: it takes an idle keep-alive connection to the instance (or
// dials one), writes the request head and body in one system call, reads the
// response head straight into the client's header map, copies the body, and
// puts the connection back. Requests it does not take — protocol upgrades
// and request bodies too large to buffer — still go through ReverseProxy
// (forward.go).

// Upstream client limits.
const (
	// maxIdlePerInstance bounds the keep-alive connections kept per instance.
	maxIdlePerInstance = upstreamMaxIdlePerHost
	// maxResponseHead bounds a response's status line and headers.
	maxResponseHead = 1 << 20
	// staleAfter is how long a connection may sit idle before it is checked
	// (a non-blocking peek) for a close by the instance before reuse: a
	// request is never written to a connection the server already closed.
	staleAfter = 50 * time.Millisecond
	// upstreamReadBuffer is the size of a connection's read buffer; a
	// response head must fit in maxResponseHead, not in it.
	upstreamReadBuffer = 8 << 10
	// inlineBodyBytes: bodies up to this size are copied behind the request
	// head; larger ones are written from where they are (writev).
	inlineBodyBytes = 4 << 10
	// keptBufferBytes bounds the request and response head buffers a
	// connection keeps between requests.
	keptBufferBytes = 64 << 10
)

// upstream holds what the gateway's connections to instances share.
type upstream struct {
	// dialConn opens connections: dialer.DialContext, or a test's wrapper.
	dialConn func(ctx context.Context, network, addr string) (net.Conn, error)
	// quickAcks counts the times a connection armed TCP_QUICKACK because a
	// response arrived in parts (see upstreamConn.Read).
	quickAcks atomic.Int64
}

func newUpstream() *upstream {
	d := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamKeepAlive}
	return &upstream{dialConn: d.DialContext}
}

// hostPool is one instance's idle keep-alive connections. It lives as long
// as the pool tracks the instance; close releases them.
type hostPool struct {
	addr     string // as the snapshot gave it
	network  string // "tcp" or "unix"
	dialAddr string // host:port, or the socket path
	host     string // the Host header sent

	mu     sync.Mutex // protects idle and closed
	idle   []*upstreamConn
	closed bool
}

// newHostPool parses an instance address: "host:port" is TCP, "unix:" and
// an absolute path a unix socket.
func newHostPool(addr string) *hostPool {
	hp := &hostPool{addr: addr, network: "tcp", dialAddr: addr, host: addr}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		hp.network, hp.dialAddr, hp.host = "unix", path, "localhost"
	}
	return hp
}

// get returns the most recently used idle connection that is still open,
// or nil. now is the request's start, deadline its end.
func (hp *hostPool) get(now, deadline time.Time) *upstreamConn {
	for {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			return nil
		}
		c := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		if now.Sub(c.lastUsed) < staleAfter {
			return c
		}
		c.setDeadline(deadline)
		if c.alive() {
			return c
		}
		_ = c.nc.Close()
	}
}

// put keeps c for the next request, or closes it.
func (hp *hostPool) put(c *upstreamConn) {
	hp.mu.Lock()
	if !hp.closed && len(hp.idle) < maxIdlePerInstance {
		hp.idle = append(hp.idle, c)
		hp.mu.Unlock()
		return
	}
	hp.mu.Unlock()
	_ = c.nc.Close()
}

// close closes the idle connections; connections in use are closed when
// they come back.
func (hp *hostPool) close() {
	hp.mu.Lock()
	idle := hp.idle
	hp.idle, hp.closed = nil, true
	hp.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

// dial opens a new connection to hp's instance.
func (u *upstream) dial(ctx context.Context, hp *hostPool) (*upstreamConn, error) {
	nc, err := u.dialConn(ctx, hp.network, hp.dialAddr)
	if err != nil {
		return nil, err
	}
	c := &upstreamConn{up: u, nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	c.tcp = hp.network == "tcp"
	c.peekFn = c.peek
	c.writeFn = c.write
	c.abortFn = c.abort
	c.br = bufio.NewReaderSize(c, upstreamReadBuffer)
	c.head = make([]byte, 0, 512)
	return c, nil
}

// upstreamConn is one keep-alive connection to an instance, used by one
// request at a time.
type upstreamConn struct {
	up  *upstream
	nc  net.Conn
	rc  syscall.RawConn // for TCP_QUICKACK and the liveness peek; nil if unavailable
	tcp bool
	br  *bufio.Reader
	// head is the request head, rebuilt for every request.
	head []byte
	// wv is the vector written when a large body follows the head.
	wv   net.Buffers
	bufs [2][]byte
	// scratch collects a response head before it becomes one string.
	scratch []byte
	// lines are the offsets of the header lines in scratch.
	lines    []int
	lastUsed time.Time
	// deadline is the current exchange's end (zero when idle).
	deadline time.Time
	// abortFn is abort, bound once: context.AfterFunc calls it when the
	// client leaves.
	abortFn func()
	// midResponse is set once part of the current response has arrived.
	midResponse bool
	// peek's results, and peek bound once so that RawConn.Read does not
	// allocate a closure per call.
	// writeAndAwait's state, and write bound once.
	writeFn  func(fd uintptr) bool
	wrote    bool
	writeN   int
	writeErr error
	peekFn   func(fd uintptr) bool
	peekN    int
	peekErr  error
	peekBuf  [1]byte
}

// Read reads from the instance. Once part of a response has arrived, every
// further read first arms TCP_QUICKACK, so that the kernel acknowledges what
// came at once instead of up to 40 ms later. That matters for servers that
// write a response's head and body in two writes without TCP_NODELAY, like
// R's httpuv (plumber): Nagle holds the body back until the head is
// acknowledged. A server that answers in one segment (Go, most others) is
// read in one go and never pays for the setsockopt or an extra ACK packet.
func (c *upstreamConn) Read(p []byte) (int, error) {
	if c.midResponse && c.tcp && c.rc != nil {
		c.up.quickAcks.Add(1)
		_ = c.rc.Control(setQuickAck)
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.midResponse = true
	}
	return n, err
}

// setDeadline bounds every read and write on c.
func (c *upstreamConn) setDeadline(t time.Time) {
	c.deadline = t
	_ = c.nc.SetDeadline(t)
}

// abort makes blocked and future I/O on c fail at once.
func (c *upstreamConn) abort() { _ = c.nc.SetDeadline(aLongTimeAgo) }

// alive reports whether the instance has neither closed c nor sent
// anything unasked since its last response: a non-blocking peek.
func (c *upstreamConn) alive() bool {
	if c.rc == nil {
		return true
	}
	c.peekN, c.peekErr = 0, nil
	if err := c.rc.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EWOULDBLOCK
}

func (c *upstreamConn) peek(fd uintptr) bool {
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // never wait
}

// writeRequest writes the request head in c.head and body in one system
// call.
func (c *upstreamConn) writeRequest(body []byte) error {
	c.midResponse = false
	var err error
	if len(body) <= inlineBodyBytes {
		c.head = append(c.head, body...)
		if c.rc != nil {
			err = c.writeAndAwait()
		} else {
			_, err = c.nc.Write(c.head)
		}
	} else {
		c.bufs[0], c.bufs[1] = c.head, body
		c.wv = c.bufs[:]
		_, err = c.wv.WriteTo(c.nc)
		c.bufs[0], c.bufs[1] = nil, nil
	}
	if cap(c.head) > keptBufferBytes { // a request with huge headers: do not keep its buffer
		c.head = make([]byte, 0, 512)
	}
	return err
}

// writeAndAwait writes c.head and waits until the answer can be read.
//
// A plain Write and then Read costs three system calls per exchange: the
// write, a read that finds nothing yet (the instance has not answered a
// microsecond after the request left) and, once the poller says the answer
// is there, the read that gets it. Here the write happens inside RawConn.Read
// and the wait follows it without a read: RawConn.Read resets the
// descriptor's readiness before calling writeFn, so any answer, which can
// only arrive after the write, wakes the wait. The read that follows then
// finds the answer at once. The wait ends, too, on the deadline or an abort
// (abortFn), and the read after it reports that.
func (c *upstreamConn) writeAndAwait() error {
	c.wrote, c.writeN, c.writeErr = false, 0, nil
	_ = c.rc.Read(c.writeFn) // a failed wait shows in the read that follows
	if c.writeErr != nil && c.writeErr != syscall.EAGAIN && c.writeErr != syscall.EINTR {
		return os.NewSyscallError("write", c.writeErr)
	}
	if c.writeN < len(c.head) { // a full send buffer, or a signal: the rest the usual way
		_, err := c.nc.Write(c.head[c.writeN:])
		return err
	}
	return nil
}

// write is writeAndAwait's RawConn.Read callback, bound once in writeFn.
func (c *upstreamConn) write(fd uintptr) bool {
	if c.wrote {
		return true // readable, or the wait failed
	}
	c.wrote = true
	n, err := syscall.Write(int(fd), c.head)
	c.writeN, c.writeErr = max(n, 0), err
	return err != nil || n < len(c.head) // wait only after a whole write
}

// responseHead is what the gateway needs of a response's status line and
// framing headers; the other headers went to the client's header map.
type responseHead struct {
	status int
	reason string
	// length is the Content-Length, -1 if none.
	length  int64
	chunked bool
	// untilClose: neither a length nor chunking; the body ends when the
	// server closes the connection.
	untilClose bool
	// close: the connection cannot carry another request after this one.
	close bool
}

// errBadResponse is a response the gateway cannot parse.
var errBadResponse = errors.New("malformed HTTP response from the instance")

// readResponse reads a response head (skipping 1xx informational responses)
// and adds its end-to-end headers to h, except those skip names.
func (c *upstreamConn) readResponse(h http.Header, skip func(key string) bool) (responseHead, error) {
	for {
		rh, err := c.readHead()
		if err != nil {
			return rh, err
		}
		if rh.status >= 100 && rh.status <= 199 && rh.status != http.StatusSwitchingProtocols {
			continue // 100 Continue, 103 Early Hints: not forwarded
		}
		if rh.status == http.StatusSwitchingProtocols {
			return rh, fmt.Errorf("%w: 101 Switching Protocols to a request that asked for no upgrade", errBadResponse)
		}
		return rh, c.headers(&rh, h, skip)
	}
}

// readHead reads a status line and the header lines into c.scratch.
func (c *upstreamConn) readHead() (responseHead, error) {
	rh := responseHead{length: -1}
	c.scratch = c.scratch[:0]
	c.lines = c.lines[:0]
	first := true
	for {
		start := len(c.scratch)
		for {
			line, err := c.br.ReadSlice('\n')
			c.scratch = append(c.scratch, line...)
			if len(c.scratch) > maxResponseHead {
				return rh, fmt.Errorf("%w: head larger than %d bytes", errBadResponse, maxResponseHead)
			}
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				if err == io.EOF && first && start == 0 && len(c.scratch) == 0 {
					return rh, io.EOF // closed before answering
				}
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return rh, err
			}
		}
		line := trimEOL(c.scratch[start:])
		if first {
			first = false
			if err := parseStatusLine(line, &rh); err != nil {
				return rh, err
			}
			c.scratch = c.scratch[:start] // the status line is parsed; keep headers only
			continue
		}
		if len(line) == 0 {
			c.scratch = c.scratch[:start]
			return rh, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return rh, fmt.Errorf("%w: obsolete header line folding", errBadResponse)
		}
		c.scratch = c.scratch[:start+len(line)]
		c.lines = append(c.lines, start)
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// parseStatusLine parses "HTTP/1.x NNN reason".
func parseStatusLine(line []byte, rh *responseHead) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: status line %q", errBadResponse, cut(line, 64))
	}
	switch line[7] {
	case '0':
		rh.close = true // unless Connection: keep-alive
	case '1':
	default:
		return fmt.Errorf("%w: status line %q", errBadResponse, cut(line, 64))
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return fmt.Errorf("%w: status line %q", errBadResponse, cut(line, 64))
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return fmt.Errorf("%w: status %d", errBadResponse, code)
	}
	rh.status = code
	if len(line) > 13 {
		rh.reason = reasonOf(code, line[13:])
	}
	return nil
}

// reasonOf returns the standard reason phrase without allocating when the
// server sent it, else a copy of what it sent.
func reasonOf(code int, b []byte) string {
	if std := http.StatusText(code); std == string(b) {
		return std
	}
	return string(b)
}

func cut(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// headers adds the header lines in c.scratch to h and fills in rh's
// framing. It checks every line before it adds any, so a malformed response
// leaves h as it was. It allocates one string for all the lines and one
// slice for all the values.
func (c *upstreamConn) headers(rh *responseHead, h http.Header, skip func(string) bool) error {
	if len(c.lines) == 0 {
		c.framing(rh, false, false)
		return nil
	}
	block := string(c.scratch)
	if cap(c.scratch) > keptBufferBytes { // huge headers: do not keep the buffers
		c.scratch = nil
		defer func() { c.lines = nil }()
	}
	var keepAlive, te, connTokens bool
	n := 0
	for i := range c.lines {
		key, value, err := c.line(block, i)
		if err != nil {
			return err
		}
		switch key {
		case "Content-Length":
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil || v < 0 || (rh.length >= 0 && rh.length != v) {
				return fmt.Errorf("%w: Content-Length %q", errBadResponse, cutString(value, 32))
			}
			rh.length = v
		case "Transfer-Encoding":
			te = true
			if !strings.EqualFold(value, "chunked") {
				return fmt.Errorf("%w: Transfer-Encoding %q", errBadResponse, cutString(value, 32))
			}
			rh.chunked = true
		case "Connection":
			for tok := range strings.SplitSeq(value, ",") {
				switch tok = textproto.TrimString(tok); {
				case strings.EqualFold(tok, "close"):
					rh.close = true
				case strings.EqualFold(tok, "keep-alive"):
					keepAlive = true
				case tok != "":
					connTokens = true
				}
			}
		}
		n++
	}
	vals := make([]string, 0, n)
	for i := range c.lines {
		key, value, _ := c.line(block, i)
		if hopByHop(key) || skip(key) {
			continue
		}
		vals = append(vals, value)
		if prev, ok := h[key]; ok {
			h[key] = append(prev, value)
		} else {
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if connTokens {
		c.dropConnectionTokens(block, h, skip)
	}
	c.framing(rh, keepAlive, te)
	return nil
}

// line returns the canonical name and trimmed value of header line i.
func (c *upstreamConn) line(block string, i int) (key, value string, err error) {
	end := len(block)
	if i+1 < len(c.lines) {
		end = c.lines[i+1]
	}
	line := block[c.lines[i]:end]
	colon := strings.IndexByte(line, ':')
	if colon <= 0 || !validHeaderKey(line[:colon]) {
		return "", "", fmt.Errorf("%w: header line %q", errBadResponse, cutString(line, 64))
	}
	return canonicalKey(line[:colon]), textproto.TrimString(line[colon+1:]), nil
}

// dropConnectionTokens removes from h the headers named by the response's
// Connection header (rare: only when it names more than close/keep-alive).
func (c *upstreamConn) dropConnectionTokens(block string, h http.Header, skip func(string) bool) {
	for i := range c.lines {
		key, value, _ := c.line(block, i)
		if key != "Connection" {
			continue
		}
		for tok := range strings.SplitSeq(value, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				k := textproto.CanonicalMIMEHeaderKey(tok)
				if !skip(k) { // never the gateway's own headers, which it sets itself
					delete(h, k)
				}
			}
		}
	}
}

// framing settles how the body is delimited and whether the connection can
// be reused (RFC 9112 §6.3).
func (c *upstreamConn) framing(rh *responseHead, keepAlive, te bool) {
	if rh.close && keepAlive && !rh.chunked {
		rh.close = false // HTTP/1.0 with Connection: keep-alive
	}
	if te {
		if rh.length >= 0 {
			rh.close = true // both: the length is ignored, and the connection is not trusted again
		}
		rh.length = -1
	}
	rh.untilClose = !rh.chunked && rh.length < 0
}

func cutString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// hopByHop reports the headers that belong to one connection (RFC 9110
// §7.6.1), as ReverseProxy drops them.
func hopByHop(key string) bool {
	switch key {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// validHeaderKey reports whether s is an HTTP token.
func validHeaderKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// canonicalKey returns the canonical form of a header name: s itself (no
// allocation) when it already is, a constant for common names in any case,
// else a new string.
func canonicalKey(s string) string {
	canonical := true
	upper := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if upper && 'a' <= ch && ch <= 'z' || !upper && 'A' <= ch && ch <= 'Z' {
			canonical = false
			break
		}
		upper = ch == '-'
	}
	if canonical {
		return s
	}
	for _, k := range commonKeys {
		if strings.EqualFold(s, k) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}

// commonKeys are response headers often sent in lower case (by HTTP/2-minded
// servers); matching them avoids an allocation.
var commonKeys = []string{"Content-Type", "Content-Length", "Date", "Server", "Connection", "Cache-Control",
	"Transfer-Encoding", "Vary", "Content-Encoding", "Keep-Alive", "Etag", "Last-Modified", "Access-Control-Allow-Origin"}
