package rworker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// The framing between the supervisor and a worker (lean.R reads and writes
// the other side). Integers are unsigned 32-bit little-endian.
//
//	request:  head length, body length, head, body
//	          head: method, raw path, raw query (no "?"), remote address,
//	          remote port, server name, server port, then name (lower case)
//	          and value lines per header, then "." — each line ending "\n"
//	response: status, head length, body length, head, body
//	          head: name and value lines per header
//	hello:    0, pid, 0 — a worker's first words

// maxHead bounds a response head; a worker that sends more is broken.
const maxHead = 1 << 20

// requestHead is what a request frame carries besides the body. Header
// values hold no line breaks: net/http refuses requests whose header values
// do.
type requestHead struct {
	Method, Path, Query    string
	RemoteAddr, RemotePort string
	ServerName, ServerPort string
	// Header is as net/http parsed it: Content-Length stays in it, Host
	// and Transfer-Encoding are taken out (and put back from the fields
	// below).
	Header           http.Header
	Host             string
	TransferEncoding []string
}

// headOf describes r as httpuv would to plumber: the path and query as sent
// (not decoded), the client's address and the server's.
func headOf(r *http.Request, serverHost, serverPort string) requestHead {
	h := requestHead{Method: r.Method, Header: r.Header, Host: r.Host, TransferEncoding: r.TransferEncoding,
		ServerName: serverHost, ServerPort: serverPort}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		// Absolute-form or asterisk: use what net/http parsed.
		uri = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			uri += "?" + r.URL.RawQuery
		}
	}
	h.Path, h.Query, _ = strings.Cut(uri, "?")
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.RemoteAddr, h.RemotePort = host, port
	}
	return h
}

// appendRequest appends the frame of head and body to buf.
func appendRequest(buf []byte, h requestHead, body []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, 8)...)
	line := func(s string) {
		buf = append(buf, s...)
		buf = append(buf, '\n')
	}
	line(h.Method)
	line(h.Path)
	line(h.Query)
	line(h.RemoteAddr)
	line(h.RemotePort)
	line(h.ServerName)
	line(h.ServerPort)
	if h.Host != "" {
		line("host")
		line(h.Host)
	}
	if len(h.TransferEncoding) > 0 {
		line("transfer-encoding")
		line(clean(strings.Join(h.TransferEncoding, ", ")))
	}
	for name, values := range h.Header {
		if len(values) == 0 {
			continue
		}
		line(strings.ToLower(name))
		sep := ", "
		if strings.EqualFold(name, "Cookie") {
			sep = "; "
		}
		line(clean(strings.Join(values, sep)))
	}
	line(".")
	headLen := len(buf) - start - 8
	binary.LittleEndian.PutUint32(buf[start:], uint32(headLen))
	binary.LittleEndian.PutUint32(buf[start+4:], uint32(len(body)))
	return append(buf, body...)
}

// clean keeps line breaks out of a head line (net/http already refuses them
// in header values; this is a second lock).
func clean(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// response is a worker's answer.
type response struct {
	Status int
	Header [][2]string
	Body   []byte
}

// errFrame is a frame that does not follow the protocol.
var errFrame = errors.New("malformed frame from the R worker")

// readResponse reads one response frame. A worker that ends before the
// whole frame is read gives io.ErrUnexpectedEOF (io.EOF before any byte).
func readResponse(r *bufio.Reader, maxBody int64) (response, error) {
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return response{}, err
	}
	status := binary.LittleEndian.Uint32(fixed[0:])
	headLen := binary.LittleEndian.Uint32(fixed[4:])
	bodyLen := binary.LittleEndian.Uint32(fixed[8:])
	if headLen > maxHead || int64(bodyLen) > maxBody {
		return response{}, fmt.Errorf("%w: head %d bytes, body %d bytes", errFrame, headLen, bodyLen)
	}
	buf := make([]byte, int(headLen)+int(bodyLen))
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return response{}, err
	}
	res := response{Status: int(status), Body: buf[headLen:]}
	head := string(buf[:headLen])
	for head != "" {
		name, rest, ok1 := strings.Cut(head, "\n")
		value, rest2, ok2 := strings.Cut(rest, "\n")
		if !ok1 || !ok2 {
			return response{}, fmt.Errorf("%w: header lines do not pair up", errFrame)
		}
		res.Header = append(res.Header, [2]string{name, value})
		head = rest2
	}
	return res, nil
}

// readHello reads a worker's first frame and returns its pid.
func readHello(r *bufio.Reader) (int, error) {
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return 0, err
	}
	if binary.LittleEndian.Uint32(fixed[0:]) != 0 || binary.LittleEndian.Uint32(fixed[8:]) != 0 {
		return 0, fmt.Errorf("%w: expected a hello", errFrame)
	}
	return int(binary.LittleEndian.Uint32(fixed[4:])), nil
}
