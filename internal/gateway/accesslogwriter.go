package gateway

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// AccessLog is the gateway's access log written for throughput: the request
// goroutine encodes its line into a shared buffer, in exactly the format
// log/slog's TextHandler or JSONHandler would give it (level INFO, message
// "scoring request", the same fields in the same order) but without
// allocating, and a background goroutine writes the buffer out in one write
// every FlushInterval, or sooner when it passes FlushBytes. A slow writer
// holds requests back rather than losing lines: past MaxPendingBytes,
// request goroutines wait for the writer. Close writes what is left.
//
// Lines reach the writer up to FlushInterval late, and a crash loses at most
// that much of the log.
type AccessLog struct {
	w      io.Writer
	isJSON bool

	mu sync.Mutex // protects buf, text, json, closed and err
	// buf holds encoded lines waiting for the writer goroutine.
	buf    []byte
	closed bool
	err    error      // the first write error, returned by Close
	room   *sync.Cond // signalled (on mu) when the writer has taken buf

	// text and json encode into buf; kept here so that they are not
	// allocated per line.
	text textSink
	json jsonSink

	spare []byte        // the writer goroutine's buffer
	wake  chan struct{} // a line arrived in an empty buffer, or buf passed FlushBytes
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the writer goroutine returned
}

// Access log buffering.
const (
	// FlushInterval is the longest a line waits before it is written.
	FlushInterval = 100 * time.Millisecond
	// FlushBytes starts a write before FlushInterval when this much waits.
	FlushBytes = 64 << 10
	// MaxPendingBytes is how much may wait before requests wait too.
	MaxPendingBytes = 4 << 20
)

// Access log formats, as serve --log-format names them.
const (
	AccessLogText = "text"
	AccessLogJSON = "json"
)

// NewAccessLog returns an access log writing to w in format (AccessLogText
// or AccessLogJSON) and starts its writer goroutine; Close stops it.
func NewAccessLog(w io.Writer, format string) (*AccessLog, error) {
	if w == nil {
		return nil, errors.New("access log: no writer")
	}
	a := &AccessLog{
		w:     w,
		buf:   make([]byte, 0, FlushBytes),
		spare: make([]byte, 0, FlushBytes),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	switch format {
	case AccessLogText, "":
	case AccessLogJSON:
		a.isJSON = true
	default:
		return nil, fmt.Errorf("access log format %q: want %q or %q", format, AccessLogText, AccessLogJSON)
	}
	a.room = sync.NewCond(&a.mu)
	go a.run()
	return a, nil
}

// write encodes e into the buffer. After Close it writes nothing.
func (a *AccessLog) write(e *accessEntry) {
	a.mu.Lock()
	for len(a.buf) >= MaxPendingBytes && !a.closed {
		a.room.Wait()
	}
	if a.closed {
		a.mu.Unlock()
		return
	}
	was := len(a.buf)
	if a.isJSON {
		a.json.b = a.buf
		a.json.line(e)
		a.buf, a.json.b = a.json.b, nil
	} else {
		a.text.b = a.buf
		a.text.line(e)
		a.buf, a.text.b = a.text.b, nil
	}
	n := len(a.buf)
	a.mu.Unlock()
	if was == 0 || (was < FlushBytes && n >= FlushBytes) {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// run is the writer goroutine: it waits for a first line, lets more gather
// for up to FlushInterval (unless FlushBytes are waiting), and writes them
// all in one call.
func (a *AccessLog) run() {
	defer close(a.done)
	t := time.NewTimer(FlushInterval)
	t.Stop()
	for {
		select {
		case <-a.wake:
		case <-a.stop:
			a.flush()
			return
		}
		if !a.pendingAtLeast(FlushBytes) {
			t.Reset(FlushInterval)
			select {
			case <-t.C:
			case <-a.wake: // FlushBytes reached
				t.Stop()
			case <-a.stop:
				t.Stop()
				a.flush()
				return
			}
		}
		a.flush()
	}
}

func (a *AccessLog) pendingAtLeast(n int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.buf) >= n
}

// flush swaps the buffers and writes what was waiting. Only the writer
// goroutine calls it.
func (a *AccessLog) flush() {
	a.mu.Lock()
	a.buf, a.spare = a.spare[:0], a.buf
	a.room.Broadcast()
	a.mu.Unlock()
	if len(a.spare) == 0 {
		return
	}
	if _, err := a.w.Write(a.spare); err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = fmt.Errorf("access log: %w", err)
		}
		a.mu.Unlock()
	}
	if cap(a.spare) > 4*MaxPendingBytes {
		a.spare = make([]byte, 0, FlushBytes) // a burst grew it; let it go
	}
}

// Close writes the lines still waiting and stops the writer goroutine. It
// returns the first write error, if any.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.stop)
		a.room.Broadcast()
	}
	a.mu.Unlock()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// The encoders below write what slog's handlers write for the same record
// (accesslog_test.go compares them byte for byte); they exist because
// slog.Logger.LogAttrs with this many attributes costs several microseconds
// and two allocations per request.

// fieldSink receives an access-log line's fields, in order.
type fieldSink interface {
	str(key, v string)
	num(key string, v int64)
	float(key string, v float64)
	flag(key string, v bool)
}

// fields hands e's fields to s, in the one order every format writes them:
// Azure's AmlOnlineEndpointTrafficLog fields, then ModelName/ModelVersion,
// Error and Aborted when they apply.
func (e *accessEntry) fields(s fieldSink) {
	s.str("Method", e.Method)
	s.str("Path", e.Path)
	s.str("EndpointName", e.EndpointName)
	s.str("DeploymentName", e.DeploymentName)
	s.str("InstanceName", e.Instance)
	s.str("Protocol", e.Protocol)
	s.num("ResponseCode", int64(e.ResponseCode))
	s.str("ResponseCodeReason", e.ResponseCodeReason)
	s.num("ModelStatusCode", int64(e.ModelStatusCode))
	s.str("ModelStatusReason", e.ModelStatusReason)
	s.num("RequestPayloadSize", e.RequestPayloadSize)
	s.num("ResponsePayloadSize", e.ResponsePayloadSize)
	s.str("UserAgent", e.UserAgent)
	s.str("XRequestId", e.XRequestID)
	s.str("XMSClientRequestId", e.XMSClientRequestID)
	s.float("TotalDurationMs", e.TotalMs)
	s.float("RequestDurationMs", e.RequestMs)
	s.float("ResponseDurationMs", e.ResponseMs)
	if e.ModelName != "" {
		s.str("ModelName", e.ModelName)
		s.str("ModelVersion", e.ModelVersion)
	}
	if e.Error != nil {
		s.str("Error", e.Error.Error())
	}
	if e.Aborted {
		s.flag("Aborted", true)
	}
}

// textSink appends a line as slog.TextHandler formats it. AccessLog keeps
// one, so that passing it as a fieldSink allocates nothing.
type textSink struct{ b []byte }

func (s *textSink) line(e *accessEntry) {
	s.b = append(s.b, "time="...)
	s.b = appendRFC3339Millis(s.b, e.Time)
	s.b = append(s.b, ` level=INFO msg="scoring request"`...)
	e.fields(s)
	s.b = append(s.b, '\n')
}

func (s *textSink) str(key, v string)       { s.b = textString(s.b, key, v) }
func (s *textSink) num(key string, v int64) { s.b = strconv.AppendInt(textKey(s.b, key), v, 10) }
func (s *textSink) flag(key string, v bool) { s.b = strconv.AppendBool(textKey(s.b, key), v) }
func (s *textSink) float(key string, v float64) {
	s.b = strconv.AppendFloat(textKey(s.b, key), v, 'g', -1, 64)
}

// appendTextEntry appends e as slog.TextHandler formats it.
func appendTextEntry(b []byte, e *accessEntry) []byte {
	s := &textSink{b: b}
	s.line(e)
	return s.b
}

func textKey(b []byte, key string) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	return append(b, '=')
}

func textString(b []byte, key, v string) []byte {
	b = textKey(b, key)
	if textNeedsQuoting(v) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// textNeedsQuoting is slog's rule: empty strings, spaces, '=', quotes,
// control and non-printing characters and invalid UTF-8 are quoted.
func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// jsonSafe reports the ASCII bytes a JSON string holds unescaped (without
// HTML escaping, as slog writes them).
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendRFC3339Millis is slog.TextHandler's time format: RFC 3339 with
// exactly three fractional digits, truncated.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the fourth digit
}

// jsonSink appends a line as slog.JSONHandler formats it.
type jsonSink struct{ b []byte }

func (s *jsonSink) line(e *accessEntry) {
	s.b = append(s.b, `{"time":"`...)
	s.b = e.Time.AppendFormat(s.b, time.RFC3339Nano)
	s.b = append(s.b, `","level":"INFO","msg":"scoring request"`...)
	e.fields(s)
	s.b = append(s.b, "}\n"...)
}

func (s *jsonSink) str(key, v string)           { s.b = jsonString(s.b, key, v) }
func (s *jsonSink) num(key string, v int64)     { s.b = strconv.AppendInt(jsonKey(s.b, key), v, 10) }
func (s *jsonSink) flag(key string, v bool)     { s.b = strconv.AppendBool(jsonKey(s.b, key), v) }
func (s *jsonSink) float(key string, v float64) { s.b = jsonFloat(s.b, key, v) }

// appendJSONEntry appends e as slog.JSONHandler formats it.
func appendJSONEntry(b []byte, e *accessEntry) []byte {
	s := &jsonSink{b: b}
	s.line(e)
	return s.b
}

func jsonKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func jsonString(b []byte, key, v string) []byte {
	b = jsonKey(b, key)
	b = append(b, '"')
	b = appendJSONEscaped(b, v)
	return append(b, '"')
}

// jsonFloat writes v as encoding/json does (slog's JSONHandler calls it).
func jsonFloat(b []byte, key string, v float64) []byte {
	b = jsonKey(b, key)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return append(b, `"!ERROR:json: unsupported value"`...) // never: durations are finite
	}
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONEscaped escapes s for a JSON string as slog does.
func appendJSONEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, '\\')
			switch c {
			case '\\', '"':
				b = append(b, c)
			case '\n':
				b = append(b, 'n')
			case '\r':
				b = append(b, 'r')
			case '\t':
				b = append(b, 't')
			default:
				b = append(b, 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
