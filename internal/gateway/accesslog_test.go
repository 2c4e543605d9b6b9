package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// viaSlog is what slog's own handler writes for e.
func viaSlog(t testing.TB, e *accessEntry, json bool) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	r := slog.NewRecord(e.Time, slog.LevelInfo, accessMessage, 0)
	r.AddAttrs(e.attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func sampleEntry() accessEntry {
	return accessEntry{
		Time:   time.Date(2026, 12, 3, 10, 32, 3, 209_624_117, time.UTC),
		Method: "POST", Path: "/endpoints/ep/score", EndpointName: "ep", DeploymentName: "blue", Instance: "blue-0",
		Protocol: "HTTP/1.1", ResponseCode: 200, ResponseCodeReason: "OK", ModelStatusCode: 200, ModelStatusReason: "OK",
		RequestPayloadSize: 28, ResponsePayloadSize: 21, UserAgent: "curl/8.0", XRequestID: "0b1e2a3c-1111-4222-8333-444455556666",
		TotalMs: 0.412, RequestMs: 0, ResponseMs: 0.398,
	}
}

// The encoder writes exactly what slog.TextHandler and slog.JSONHandler
// write for the same line, so switching serve to it changes no byte of the
// log.
func TestAccessLogEncodingMatchesSlog(t *testing.T) {
	edits := map[string]func(e *accessEntry){
		"plain": func(e *accessEntry) {},
		"empty strings": func(e *accessEntry) {
			e.UserAgent, e.XMSClientRequestID, e.Instance, e.ModelStatusReason = "", "", "", ""
		},
		"quoting":          func(e *accessEntry) { e.UserAgent = `Mozilla/5.0 (X11; "quoted") a=b\c` },
		"control and utf8": func(e *accessEntry) { e.UserAgent = "tab\tnl\nbell\x07 é ☃ \u2028 \xff" },
		"model and error": func(e *accessEntry) {
			e.ModelName, e.ModelVersion = "iris-crate", "2"
			e.Error = errors.New(`upstream: dial tcp 127.0.0.1:1: connect: connection refused "x"`)
		},
		"aborted 499": func(e *accessEntry) {
			e.Aborted, e.ResponseCode, e.ResponseCodeReason, e.ModelStatusCode = true, 499, "Client Closed Request", 0
		},
		"big and tiny floats": func(e *accessEntry) { e.TotalMs, e.RequestMs, e.ResponseMs = 180000.001, 1e-7, 123456789.5 },
		"other zone":          func(e *accessEntry) { e.Time = e.Time.In(time.FixedZone("X", 5*3600+1800)) },
		"whole millisecond":   func(e *accessEntry) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
	for name, edit := range edits {
		for _, json := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s json=%v", name, json), func(t *testing.T) {
				e := sampleEntry()
				edit(&e)
				var got []byte
				if json {
					got = appendJSONEntry(nil, &e)
				} else {
					got = appendTextEntry(nil, &e)
				}
				if want := viaSlog(t, &e, json); string(got) != want {
					t.Errorf("got  %s\nwant %s", got, want)
				}
			})
		}
	}
}

func FuzzAccessLogEncoding(f *testing.F) {
	f.Add("curl/8.0", "/endpoints/ep/score", "boom")
	f.Add("a=b \"c\"\\", "/x\ty", "\xff\u2028")
	f.Fuzz(func(t *testing.T, ua, path, errText string) {
		e := sampleEntry()
		e.UserAgent, e.Path, e.ModelName, e.ModelVersion = ua, path, errText, ua
		e.Error = errors.New(errText)
		if got, want := string(appendTextEntry(nil, &e)), viaSlog(t, &e, false); got != want {
			t.Errorf("text: got %q, want %q", got, want)
		}
		if got, want := string(appendJSONEntry(nil, &e)), viaSlog(t, &e, true); got != want {
			t.Errorf("json: got %q, want %q", got, want)
		}
	})
}

// slowWriter collects what it is given, slowly.
type slowWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	delay  time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

// Lines from many goroutines all arrive, whole, in few writes, even when
// the writer is slower than the requests; Close writes the rest.
func TestAccessLogBatchesAndLosesNothing(t *testing.T) {
	w := &slowWriter{delay: 5 * time.Millisecond}
	a, err := NewAccessLog(w, AccessLogText)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := sampleEntry()
				e.XRequestID = fmt.Sprintf("g%d-%d", g, i)
				a.write(&e)
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	if len(lines) != goroutines*each {
		t.Fatalf("got %d lines, want %d", len(lines), goroutines*each)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if !strings.HasPrefix(l, "time=") || !strings.Contains(l, `msg="scoring request"`) {
			t.Fatalf("torn line: %q", l)
		}
		_, rest, _ := strings.Cut(l, "XRequestId=")
		id, _, _ := strings.Cut(rest, " ")
		seen[id] = true
	}
	if len(seen) != goroutines*each {
		t.Errorf("got %d distinct lines, want %d", len(seen), goroutines*each)
	}
	if w.writes >= goroutines*each/10 {
		t.Errorf("%d writes for %d lines: want them batched", w.writes, goroutines*each)
	}
	// After Close nothing more is written, and nothing blocks.
	e := sampleEntry()
	a.write(&e)
	if n := strings.Count(w.buf.String(), "\n"); n != goroutines*each {
		t.Errorf("a line written after Close: %d lines", n)
	}
}

func TestNewAccessLogFormat(t *testing.T) {
	if _, err := NewAccessLog(&bytes.Buffer{}, "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("format xml: got %v, want an error naming it", err)
	}
	a, err := NewAccessLog(&bytes.Buffer{}, AccessLogJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
