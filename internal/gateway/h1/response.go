package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Sizes net/http's server uses, kept so that responses frame alike.
const (
	// bufferBeforeChunking is what a handler may write before the head
	// goes out: a body that ends within it gets a Content-Length, a longer
	// one is chunked.
	bufferBeforeChunking = 2048
	// maxPostHandlerRead is how much of a request body a handler left
	// unread is read after it, to keep the connection.
	maxPostHandlerRead = 256 << 10
	// flushAt sends the response buffer once it holds this much.
	flushAt = 64 << 10
)

// response is the http.ResponseWriter of one request, reused by its
// connection. It frames its response as net/http's server does (its
// response and chunkWriter, server.go), into the connection's out buffer.
type response struct {
	c   *conn
	req *http.Request
	// header is the handler's; snapshot is it as WriteHeader found it.
	header      http.Header
	wroteHeader bool // WriteHeader ran (with a final status)
	status      int
	// contentLength is the declared (or computed) length, -1 if none.
	contentLength int64
	written       int64
	handlerDone   bool
	// closeAfter: the connection closes after this response.
	closeAfter bool
	// limitHit: a request body left too large to read was not read.
	limitHit bool
	// w buffers the handler's writes before chunkWriter, as net/http does.
	w  *bufio.Writer
	cw chunkWriter
	// werr is the first write error on the connection.
	werr error
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ io.StringWriter     = (*response)(nil)
)

func (w *response) reset(c *conn, req *http.Request) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	bw := w.w
	*w = response{c: c, req: req, header: h, contentLength: -1, w: bw}
	w.cw = chunkWriter{res: w}
	if w.w == nil {
		w.w = bufio.NewWriterSize(&w.cw, bufferBeforeChunking)
	} else {
		w.w.Reset(&w.cw)
	}
}

// Header is the handler's header map.
func (w *response) Header() http.Header { return w.header }

// WriteHeader sends status code on the first write or flush.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return // net/http logs "superfluous response.WriteHeader"
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once.
		w.c.out = appendStatusLine(w.c.out, code)
		_ = w.header.WriteSubset((*outWriter)(w.c), excludedNoBody)
		w.c.out = append(w.c.out, "\r\n"...)
		w.c.flushOut()
		return
	}
	w.wroteHeader = true
	w.status = code
	w.cw.header = w.header.Clone()
	if cl := w.header.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.cw.header.Del("Content-Length")
		}
	}
}

var excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func (w *response) Write(p []byte) (int, error) {
	if err := w.admit(len(p)); err != nil || len(p) == 0 {
		return 0, err
	}
	return w.w.Write(p)
}

func (w *response) WriteString(s string) (int, error) {
	if err := w.admit(len(s)); err != nil || len(s) == 0 {
		return 0, err
	}
	return w.w.WriteString(s)
}

// admit checks a write of n body bytes as net/http's response.write does
// (the status 200 if none was set, a status that allows a body, the
// declared length), and counts them.
func (w *response) admit(n int) error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return nil
	}
	if !bodyAllowed(w.status) {
		return http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return http.ErrContentLength
	}
	return nil
}

// Flush sends what the handler wrote so far.
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.w.Flush()
	w.cw.flush()
	w.c.flushOut()
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// finish completes the response in the connection's out buffer (the
// caller sends it).
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.w.Flush()
	w.cw.close()
	w.w.Reset(nil) // no reference to the request's writer stays
}

// reuse reports whether the connection can carry another request.
func (w *response) reuse() bool {
	if w.closeAfter || w.werr != nil {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowed(w.status) && w.contentLength != w.written {
		return false
	}
	return !w.c.body.early
}

func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// chunkWriter writes the head before the first body bytes and frames the
// body, as net/http's chunkWriter does.
type chunkWriter struct {
	res *response
	// header is the handler's header as WriteHeader cloned it.
	header      http.Header
	wroteHeader bool
	chunking    bool
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.res.req.Method == http.MethodHead {
		return len(p), nil
	}
	c := cw.res.c
	if cw.chunking {
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, "\r\n"...)
	}
	c.out = append(c.out, p...)
	if cw.chunking {
		c.out = append(c.out, "\r\n"...)
	}
	if len(c.out) >= flushAt {
		c.flushOut()
	}
	if c.werr != nil {
		return 0, c.werr
	}
	return len(p), nil
}

func (cw *chunkWriter) flush() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
}

func (cw *chunkWriter) close() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	if cw.chunking {
		cw.res.c.out = append(cw.res.c.out, "0\r\n\r\n"...)
	}
}

// writeHeader appends the response head to the out buffer; p is the
// body's first bytes (for Content-Length and sniffing). It follows
// net/http's chunkWriter.writeHeader for HTTP/1.1 requests without
// trailers (requests of other shapes never reach this loop).
func (cw *chunkWriter) writeHeader(p []byte) {
	cw.wroteHeader = true
	w := cw.res
	c := w.c
	keepAlives := !c.l.isClosing()
	isHEAD := w.req.Method == http.MethodHead
	header := cw.header
	var extra extraHeader

	te := header.Get("Transfer-Encoding")
	hasTE := te != ""
	if w.handlerDone && !hasTE && bodyAllowed(w.status) && !has(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		extra.contentLength = strconv.AppendInt(c.clen[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1
	if header.Get("Connection") == "close" || !keepAlives {
		w.closeAfter = true
	}
	if w.req.ContentLength != 0 && !w.closeAfter {
		w.settleBody(header, &extra)
	}
	code := w.status
	if bodyAllowed(code) {
		_, haveType := header["Content-Type"]
		if header.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			extra.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressed(code) {
			header.Del(k)
		}
	}
	if !has(header, "Date") {
		extra.date = time.Now().UTC().AppendFormat(c.date[:0], http.TimeFormat)
	}
	if hasCL && hasTE && te != "identity" {
		header.Del("Content-Length")
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowed(code) || code == http.StatusNoContent:
		header.Del("Transfer-Encoding")
	case hasCL:
		header.Del("Transfer-Encoding")
	case hasTE && te == "identity":
		cw.chunking = false
		w.closeAfter = true
		header.Del("Transfer-Encoding")
	default:
		cw.chunking = true
		extra.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			header.Del("Transfer-Encoding")
		}
	}
	if cw.chunking {
		header.Del("Content-Length")
	}
	if w.closeAfter && (!keepAlives || !hasToken(header.Get("Connection"), "close")) && !isProtocolSwitch(code, header) {
		header.Del("Connection")
		extra.connection = "close"
	}
	c.out = appendStatusLine(c.out, code)
	_ = header.WriteSubset((*outWriter)(c), nil)
	c.out = extra.appendTo(c.out)
	c.out = append(c.out, "\r\n"...)
}

// settleBody reads what the handler left of the request body, as
// net/http does before a response: up to maxPostHandlerRead, or the
// connection closes after the response.
func (w *response) settleBody(header http.Header, extra *extraHeader) {
	b := w.c.body
	tooBig := false
	switch {
	case b.closed:
		if !b.sawEOF.Load() {
			w.closeAfter = true
		}
	case w.req.ContentLength > 0 && w.req.ContentLength-b.n >= maxPostHandlerRead:
		tooBig = true
	default:
		_, err := io.CopyN(io.Discard, b.inner, maxPostHandlerRead+1)
		switch err {
		case nil:
			tooBig = true
		case io.EOF:
			b.sawEOF.Store(true)
		default:
			w.closeAfter = true
		}
	}
	if tooBig {
		w.closeAfter, w.limitHit = true, true
		header.Del("Connection")
		extra.connection = "close"
	}
}

func suppressed(code int) []string {
	switch {
	case code == http.StatusNotModified:
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	case !bodyAllowed(code):
		return []string{"Content-Length", "Transfer-Encoding"}
	}
	return nil
}

func isProtocolSwitch(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && hasToken(h.Get("Connection"), "upgrade")
}

// has reports a header key with a non-empty first value, as net/http's
// Header.has.
func has(h http.Header, key string) bool {
	v := h[key]
	return len(v) > 0 && v[0] != ""
}

// hasToken reports whether token is in the comma-separated list v.
func hasToken(v, token string) bool {
	for f := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(textproto.TrimString(f), token) {
			return true
		}
	}
	return false
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
		return append(b, "\r\n"...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, " status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

// extraHeader are the headers the server adds, written after the
// handler's in net/http's order.
type extraHeader struct {
	contentType      string
	connection       string
	transferEncoding string
	date             []byte
	contentLength    []byte
}

func (h *extraHeader) appendTo(b []byte) []byte {
	if h.date != nil {
		b = append(append(append(b, "Date: "...), h.date...), "\r\n"...)
	}
	if h.contentLength != nil {
		b = append(append(append(b, "Content-Length: "...), h.contentLength...), "\r\n"...)
	}
	for _, kv := range [...][2]string{{"Content-Type", h.contentType}, {"Connection", h.connection}, {"Transfer-Encoding", h.transferEncoding}} {
		if kv[1] != "" {
			b = append(append(append(append(b, kv[0]...), ": "...), kv[1]...), "\r\n"...)
		}
	}
	return b
}

// outWriter appends to the connection's out buffer (for
// Header.WriteSubset).
type outWriter conn

func (o *outWriter) Write(p []byte) (int, error) {
	o.out = append(o.out, p...)
	return len(p), nil
}

func (o *outWriter) WriteString(s string) (int, error) {
	o.out = append(o.out, s...)
	return len(s), nil
}
