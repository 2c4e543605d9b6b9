package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestSanitizeClientRequestID(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean", "abc-DEF_123", "abc-DEF_123"},
		{"empty", "", ""},
		{"drops others", "a b/c.d:e!f", "abcdef"},
		{"cut to 40", strings.Repeat("a", 50), strings.Repeat("a", 40)},
		{"cut after dropping", strings.Repeat("a.", 45), strings.Repeat("a", 40)},
		{"non-ASCII", "é-ok-日本", "-ok-"},
		{"header injection", "id\r\nX-Evil: 1", "idX-Evil1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeClientRequestID(tt.in); got != tt.want {
				t.Errorf("sanitizeClientRequestID(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzSanitizeClientRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", strings.Repeat("x", 41), "a b\r\nc", "é日本-_", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeClientRequestID(s)
		if len(got) > maxClientRequestID {
			t.Fatalf("sanitizeClientRequestID(%q) = %q: %d bytes, want <= 40", s, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			if !clientIDByte(got[i]) {
				t.Fatalf("sanitizeClientRequestID(%q) = %q: byte %q not allowed", s, got, got[i])
			}
		}
		if again := sanitizeClientRequestID(got); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER   abc  ", "abc", true},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Basic abc", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := bearerToken(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("bearerToken(%q): got %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic y", "", "Bearer \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := bearerToken(s)
		if ok && (tok == "" || tok != strings.TrimSpace(tok) || !utf8.ValidString(tok)) {
			t.Fatalf("bearerToken(%q) = %q, true", s, tok)
		}
		if !ok && tok != "" {
			t.Fatalf("bearerToken(%q) = %q, false", s, tok)
		}
	})
}

func TestCutUserAgent(t *testing.T) {
	long := strings.Repeat("é", 80)
	got := cutUserAgent(long)
	if n := utf8.RuneCountInString(got); n != maxUserAgent || !utf8.ValidString(got) {
		t.Errorf("cutUserAgent: got %d runes (valid UTF-8 %v), want 70", n, utf8.ValidString(got))
	}
	if got := cutUserAgent("curl/8.0"); got != "curl/8.0" {
		t.Errorf("cutUserAgent(short): got %q", got)
	}
}

// The tracing headers: x-request-id is always a fresh GUID, the client's
// x-ms-client-request-id is sanitised; both reach the model and come back;
// the model cannot forge them or the deployment header.
func TestTracingHeaders(t *testing.T) {
	var mu sync.Mutex
	var up http.Header
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		up = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("X-Request-Id", "forged")
		w.Header().Set("Azureml-Model-Deployment", "forged")
		_, _ = io.WriteString(w, "{}")
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))

	clientID := "my id/" + strings.Repeat("x", 50)
	res, _ := call(t, front, "POST", "/endpoints/ep/score", map[string]string{
		"Authorization":          "Bearer " + testKey,
		"X-Request-Id":           "client-chosen",
		"X-Ms-Client-Request-Id": clientID,
	}, "{}")
	if res.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200", res.StatusCode)
	}
	rid := res.Header.Values("X-Request-Id")
	if len(rid) != 1 {
		t.Fatalf("x-request-id: got %q, want exactly one", rid)
	}
	if _, err := uuid.Parse(rid[0]); err != nil || rid[0] == "client-chosen" {
		t.Errorf("x-request-id: got %q, want a server GUID", rid[0])
	}
	wantClient := "myid" + strings.Repeat("x", 36)
	if got := res.Header.Get("X-Ms-Client-Request-Id"); got != wantClient {
		t.Errorf("x-ms-client-request-id: got %q, want %q", got, wantClient)
	}
	if got := res.Header.Values("Azureml-Model-Deployment"); !cmp.Equal(got, []string{"blue"}) {
		t.Errorf("azureml-model-deployment: got %q, want [blue]", got)
	}
	mu.Lock()
	upstream := up
	mu.Unlock()
	if got := upstream.Get("X-Request-Id"); got != rid[0] {
		t.Errorf("upstream x-request-id: got %q, want %q", got, rid[0])
	}
	if got := upstream.Get("X-Ms-Client-Request-Id"); got != wantClient {
		t.Errorf("upstream x-ms-client-request-id: got %q, want %q", got, wantClient)
	}
	if got := upstream.Get("Authorization"); got != "" {
		t.Errorf("upstream Authorization: got %q, want none", got)
	}

	// Two requests never share an id.
	res2, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
	if res2.StatusCode != 200 {
		t.Errorf("second request: got %d, want 200", res2.StatusCode)
	}
	if res2.Header.Get("X-Request-Id") == rid[0] {
		t.Errorf("x-request-id repeated across requests: %q", rid[0])
	}
	// Errors carry the ids too.
	res3, _ := call(t, front, "POST", "/endpoints/nope/score", map[string]string{"X-Ms-Client-Request-Id": "abc"}, "")
	if res3.Header.Get("X-Request-Id") == "" || res3.Header.Get("X-Ms-Client-Request-Id") != "abc" {
		t.Errorf("404 headers: got %v, want both ids", res3.Header)
	}
}

// One access-log line per request with Azure's fields; never the key or the body.
func TestAccessLog(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "no such thing")
	})
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	g, _, front := newTestGateway(t, Config{Logger: logger})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))

	body := `{"secret-payload":1}`
	res, _ := call(t, front, "POST", "/endpoints/ep/score?q=1", map[string]string{
		"Authorization": "Bearer " + testKey, "User-Agent": strings.Repeat("u", 100), "X-Ms-Client-Request-Id": "cid",
	}, body)
	if res.StatusCode != 424 {
		t.Fatalf("status: got %d, want 424", res.StatusCode)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), out)
	}
	if strings.Contains(out, testKey) || strings.Contains(out, "secret-payload") || strings.Contains(out, "no such thing") {
		t.Errorf("access log leaks the key or a body: %s", out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Method", "Path", "EndpointName", "DeploymentName", "Protocol", "ResponseCode",
		"ResponseCodeReason", "ModelStatusCode", "ModelStatusReason", "RequestPayloadSize", "ResponsePayloadSize",
		"UserAgent", "XRequestId", "XMSClientRequestId", "TotalDurationMs", "RequestDurationMs", "ResponseDurationMs"} {
		if _, ok := rec[f]; !ok {
			t.Errorf("access log lacks %s: %s", f, lines[0])
		}
	}
	want := map[string]any{
		"Method": "POST", "Path": "/endpoints/ep/score", "EndpointName": "ep", "DeploymentName": "blue",
		"ResponseCode": 424.0, "ResponseCodeReason": "Failed Dependency", "ModelStatusCode": 404.0,
		"ModelStatusReason": "Not Found", "RequestPayloadSize": float64(len(body)),
		"ResponsePayloadSize": float64(len("no such thing")), "UserAgent": strings.Repeat("u", 70),
		"XMSClientRequestId": "cid", "XRequestId": res.Header.Get("X-Request-Id"),
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s: got %v, want %v", k, rec[k], v)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
