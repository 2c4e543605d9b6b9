package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// direct reports whether a request goes through the gateway's own client
// (upstream.go) rather than ReverseProxy: every request but protocol
// upgrades and bodies streamed rather than buffered, when no Transport was
// configured.
func (g *Gateway) direct(st *reqState, r *http.Request) bool {
	if g.up == nil {
		return false
	}
	if r.Body != nil && r.Body != http.NoBody && st.buffered == nil {
		return false
	}
	_, upgrade := r.Header["Upgrade"]
	return !upgrade
}

// forward proxies r to inst over the gateway's own client and writes the
// answer. An error it returns has not been written to the client yet; once
// the response has started, a failure aborts it (http.ErrAbortHandler), as
// ReverseProxy does.
func (g *Gateway) forward(st *reqState, r *http.Request, inst *instance, deadline time.Time) error {
	hp := inst.conns
	c := hp.get(st.start, deadline)
	for attempt := 0; ; attempt++ {
		reused := c != nil
		if c == nil {
			var err error
			if c, err = g.dial(st, r, hp, deadline); err != nil {
				return err
			}
		}
		c.setDeadline(deadline)
		c.head = appendRequestHead(c.head[:0], st, r, hp.host)
		// The client leaving ends the exchange: blocked reads and writes on
		// c fail at once (the wait for the answer starts in writeRequest),
		// and the instance sees the connection close.
		stop := context.AfterFunc(r.Context(), c.abortFn)
		err := c.writeRequest(st.buffered)
		if err == nil {
			return g.exchange(st, r, hp, c, stop)
		}
		stop()
		_ = c.nc.Close()
		// A kept-alive connection the instance closed in the meantime:
		// nothing reached it, so the request goes again on a new one.
		if !reused || attempt > 0 || !retryableWrite(err) {
			return g.upstreamFailure(st, r, deadline, err)
		}
		c = nil
	}
}

// retryableWrite reports a write that failed because the peer had closed
// the connection.
func retryableWrite(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED)
}

// dial opens a new connection to hp within the request's deadline.
func (g *Gateway) dial(st *reqState, r *http.Request, hp *hostPool, deadline time.Time) (*upstreamConn, error) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	c, err := g.up.dial(ctx, hp)
	if err != nil {
		return nil, g.upstreamFailure(st, r, deadline, err)
	}
	return c, nil
}

// exchange reads the response to the request just written on c and copies
// it to the client. stop ends the abort on the client's leaving (forward).
func (g *Gateway) exchange(st *reqState, r *http.Request, hp *hostPool, c *upstreamConn, stop func() bool) error {
	reuse := false
	defer func() {
		if !stop() || !reuse {
			_ = c.nc.Close()
			return
		}
		// The deadline stays: the next request on c sets its own before any
		// I/O (hostPool.get, forward), and under load one timer update per
		// request is cheaper than clearing and setting.
		c.lastUsed = st.start
		hp.put(c)
	}()

	h := st.w.Header()
	rh, err := c.readResponse(h, ownedHeader)
	if err != nil {
		return g.upstreamFailure(st, r, c.deadline, err)
	}
	st.firstByte = time.Now()
	setServerTiming(st, h)
	st.modelStatus = rh.status
	st.modelReason = rh.reason
	if st.modelReason == "" {
		st.modelReason = http.StatusText(rh.status)
	}
	code := rh.status
	if code < 200 || code > 299 {
		h[hdrModelErrorStatusCode] = []string{codeLabel(code)}
		h[hdrModelErrorReason] = []string{st.modelReason}
		code = http.StatusFailedDependency
	}
	st.w.WriteHeader(code)

	if r.Method == http.MethodHead || rh.status == http.StatusNoContent || rh.status == http.StatusNotModified {
		reuse = !rh.close && c.br.Buffered() == 0
		return nil
	}
	flush := rh.length < 0 || isEventStream(h)
	if err := c.copyBody(&st.w, &rh, flush); err != nil {
		// The status line is out: all that is left is to cut the response
		// short, which the client sees as an incomplete answer.
		st.err = &upstreamError{err}
		panic(http.ErrAbortHandler)
	}
	reuse = !rh.close && !rh.untilClose && c.br.Buffered() == 0
	return nil
}

func isEventStream(h http.Header) bool {
	v := h["Content-Type"]
	return len(v) > 0 && strings.HasPrefix(v[0], "text/event-stream")
}

// upstreamFailure maps a failed exchange before any response byte reached
// the client: the request timeout, a client that left, or an instance that
// could not be reached or answered badly.
func (g *Gateway) upstreamFailure(st *reqState, r *http.Request, deadline time.Time, err error) error {
	switch {
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return errRequestTimeout
	case r.Context().Err() != nil:
		return errClientGone
	}
	g.logUpstreamError(st, err)
	return &upstreamError{err}
}

// logUpstreamError reports a failed exchange on the server log, as
// ReverseProxy's ErrorLog did.
func (g *Gateway) logUpstreamError(st *reqState, err error) {
	if g.log == nil {
		return
	}
	attrs := []any{"err", err}
	if st.rt != nil {
		attrs = append(attrs, "endpoint", st.rt.name)
	}
	if st.t != nil {
		attrs = append(attrs, "deployment", st.t.name)
	}
	if st.inst != nil {
		attrs = append(attrs, "instance", st.inst.name, "addr", st.inst.addr)
	}
	g.log.Warn("proxy error", attrs...)
}

// ownedHeader reports the response headers the gateway sets itself: a
// model cannot forge them.
func ownedHeader(key string) bool {
	switch key {
	case hdrRequestID, hdrClientRequestID, hdrModelDeployment, hdrModelErrorStatusCode, hdrModelErrorReason,
		hdrPlumblineDeployment, hdrPlumblineModel, hdrPlumblineModelDigest:
		return true
	}
	return false
}

// copyBody copies the response body to w. flush sends each piece on at
// once (streamed answers: chunked, or text/event-stream).
func (c *upstreamConn) copyBody(w *statusWriter, rh *responseHead, flush bool) error {
	switch {
	case rh.chunked:
		if err := c.copyStream(w, httputil.NewChunkedReader(c.br), flush); err != nil {
			return err
		}
		return c.skipTrailers()
	case rh.length >= 0:
		return c.copyN(w, rh.length, flush)
	default:
		return c.copyStream(w, c.br, flush)
	}
}

// copyN copies exactly n bytes, straight out of the read buffer.
func (c *upstreamConn) copyN(w *statusWriter, n int64, flush bool) error {
	for n > 0 {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		m := int(min(int64(c.br.Buffered()), n))
		b, _ := c.br.Peek(m)
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = c.br.Discard(m)
		n -= int64(m)
		if flush {
			w.Flush()
		}
	}
	return nil
}

// copyStream copies r to w until r ends.
func (c *upstreamConn) copyStream(w *statusWriter, r io.Reader, flush bool) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				w.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// skipTrailers reads the trailer section after a chunked body's last
// chunk; trailers are not forwarded.
func (c *upstreamConn) skipTrailers() error {
	for n := 0; ; {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(trimEOL(line)) == 0 {
			return nil
		}
		if n += len(line); n > maxResponseHead {
			return errBadResponse
		}
	}
}

// appendRequestHead appends the request line and headers sent to an
// instance: the client's end-to-end headers minus its credential, the
// tracing ids, X-Forwarded-For/-Host/-Proto (the client's own are
// replaced, as ReverseProxy's Rewrite does), and the body's length.
func appendRequestHead(b []byte, st *reqState, r *http.Request, host string) []byte {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, st.upstreamURI...)
	if q := r.URL.RawQuery; q != "" {
		b = append(b, '?')
		b = append(b, q...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if skipRequestHeader(k) || (len(conn) > 0 && listedIn(conn, k)) {
			continue
		}
		for _, v := range vs {
			b = appendHeader(b, k, v)
		}
	}
	b = appendHeader(b, hdrRequestID, st.requestID[0])
	if st.clientID != nil {
		b = appendHeader(b, hdrClientRequestID, st.clientID[0])
	}
	if ip := clientIP(r.RemoteAddr); ip != "" {
		b = appendHeader(b, "X-Forwarded-For", ip)
	}
	if r.Host != "" {
		b = appendHeader(b, "X-Forwarded-Host", r.Host)
	}
	if r.TLS != nil {
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	} else {
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	if n := len(st.buffered); n > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// skipRequestHeader reports the client headers that do not go upstream.
func skipRequestHeader(k string) bool {
	switch k {
	case hdrAuthorization, hdrExpect, "Host", "Content-Length", hdrRequestID, hdrClientRequestID,
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return hopByHop(k)
}

// listedIn reports whether the Connection header values name key.
func listedIn(conn []string, key string) bool {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}

// clientIP is the host part of a RemoteAddr ("1.2.3.4:5" → "1.2.3.4",
// "[::1]:5" → "::1"), without allocating; "" if it has no port.
func clientIP(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return ""
	}
	host := addr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}
