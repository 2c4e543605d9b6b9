package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/auth"
)

// errorJSON is the body of every error the gateway writes.
type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, body string) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func TestStatusPaths(t *testing.T) {
	issuer, err := auth.NewTokenIssuer([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good, _ := issuer.Issue("tok", now)
	expired, _ := issuer.Issue("tok", now.Add(-3*time.Hour))
	other, _ := issuer.Issue("other", now)

	var seenPath, seenQuery, seenAuth string
	var seenMu sync.Mutex
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seenMu.Lock()
		seenPath, seenQuery, seenAuth = r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")
		seenMu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"prediction":[0.42]}`)
	})
	failing := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "model exploded")
	})

	blue := dep("blue", ok)
	blue.OpenAPIPath = "/openapi.json"
	green := dep("green", ok)
	green.ScoringPath = "/predict"
	ep := endpoint("ep", blue, green)
	zero := endpoint("zero", dep("blue", ok))
	zero.Traffic["blue"] = 0
	tok := endpoint("tok", dep("blue", ok))
	tok.AuthMode = "aml_token"
	aad := endpoint("aad", dep("blue", ok))
	aad.AuthMode = "aad_token"
	bad := endpoint("bad", dep("blue", failing))
	gone := endpoint("gone", dep("blue", deadAddr(t)))
	empty := endpoint("empty", dep("blue"))

	g, _, front := newTestGateway(t, Config{Tokens: issuer, MaxBodyBytes: 64})
	g.Update(snapshot(ep, zero, tok, aad, bad, gone, empty))

	key := bearer(testKey)
	withKey := func(kv ...string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + testKey}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		body       string
		wantStatus int
		wantMsg    string // substring of the error message, for errors
		wantBody   string // exact body, for successes and 424
		wantPath   string // path the backend saw
		wantQuery  string
	}{
		{name: "200 path-based", method: "POST", path: "/endpoints/ep/score?x=1&y=2", hdr: key, body: `{"a":1}`,
			wantStatus: 200, wantBody: `{"prediction":[0.42]}`, wantPath: "/score", wantQuery: "x=1&y=2"},
		{name: "200 GET any method", method: "GET", path: "/endpoints/ep/score", hdr: key, wantStatus: 200, wantPath: "/score"},
		{name: "200 upper-case endpoint", method: "POST", path: "/endpoints/EP/score", hdr: key, wantStatus: 200, wantPath: "/score"},
		{name: "200 directed to 0% deployment with its own scoring path", method: "POST", path: "/endpoints/ep/score",
			hdr: withKey("azureml-model-deployment", "green"), wantStatus: 200, wantPath: "/predict"},
		{name: "200 swagger", method: "GET", path: "/endpoints/ep/swagger.json", hdr: key, wantStatus: 200, wantPath: "/openapi.json"},
		{name: "200 aml_token", method: "POST", path: "/endpoints/tok/score", hdr: bearer(good.AccessToken), wantStatus: 200},
		{name: "200 secondary scheme spelling", method: "POST", path: "/endpoints/ep/score",
			hdr: map[string]string{"Authorization": "bearer " + testKey}, wantStatus: 200},

		{name: "401 no key", method: "POST", path: "/endpoints/ep/score", wantStatus: 401, wantMsg: "missing bearer token"},
		{name: "401 basic auth", method: "POST", path: "/endpoints/ep/score",
			hdr: map[string]string{"Authorization": "Basic dTpw"}, wantStatus: 401, wantMsg: "missing bearer token"},
		{name: "401 wrong key", method: "POST", path: "/endpoints/ep/score", hdr: bearer("nope"), wantStatus: 401, wantMsg: "invalid credentials"},
		{name: "401 empty key slot never matches", method: "POST", path: "/endpoints/ep/score",
			hdr: map[string]string{"Authorization": "Bearer  "}, wantStatus: 401, wantMsg: "missing bearer token"},
		{name: "401 expired token", method: "POST", path: "/endpoints/tok/score", hdr: bearer(expired.AccessToken), wantStatus: 401, wantMsg: "token expired"},
		{name: "401 token for another endpoint", method: "POST", path: "/endpoints/tok/score", hdr: bearer(other.AccessToken), wantStatus: 401, wantMsg: "invalid credentials"},
		{name: "401 key on a token endpoint", method: "POST", path: "/endpoints/tok/score", hdr: key, wantStatus: 401, wantMsg: "invalid credentials"},
		{name: "401 aad not configured", method: "POST", path: "/endpoints/aad/score", hdr: key, wantStatus: 401, wantMsg: "aad_token is not configured on this server"},

		{name: "404 unknown endpoint", method: "POST", path: "/endpoints/nope/score", hdr: key, wantStatus: 404, wantMsg: "Endpoint not found"},
		{name: "404 not a scoring path", method: "POST", path: "/endpoints/ep/other", hdr: key, wantStatus: 404, wantMsg: "Not a scoring URI"},
		{name: "404 no positive weight", method: "POST", path: "/endpoints/zero/score", hdr: key, wantStatus: 404,
			wantMsg: "The endpoint doesn't have any valid deployment with positive weight."},
		{name: "404 unknown deployment header", method: "POST", path: "/endpoints/ep/score",
			hdr: withKey("azureml-model-deployment", "purple"), wantStatus: 404, wantMsg: "purple"},
		{name: "404 swagger without OpenAPI path", method: "GET", path: "/endpoints/ep/swagger.json",
			hdr: withKey("azureml-model-deployment", "green"), wantStatus: 404, wantMsg: "OpenAPI"},

		{name: "413 content-length", method: "POST", path: "/endpoints/ep/score", hdr: key, body: strings.Repeat("x", 65),
			wantStatus: 413, wantMsg: "larger"},
		{name: "424 model error", method: "POST", path: "/endpoints/bad/score", hdr: key, body: "{}",
			wantStatus: 424, wantBody: "model exploded"},
		{name: "502 upstream down", method: "POST", path: "/endpoints/gone/score", hdr: key, body: "{}", wantStatus: 502},
		{name: "503 no ready instance", method: "POST", path: "/endpoints/empty/score", hdr: key, wantStatus: 503, wantMsg: "no ready instance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seenMu.Lock()
			seenPath, seenQuery, seenAuth = "", "", ""
			seenMu.Unlock()
			res, body := call(t, front, tt.method, tt.path, tt.hdr, tt.body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", res.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			if tt.wantMsg != "" {
				e := decodeError(t, body)
				if !strings.Contains(e.Error.Message, tt.wantMsg) {
					t.Errorf("message: got %q, want it to contain %q", e.Error.Message, tt.wantMsg)
				}
				if got := res.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type: got %q, want application/json", got)
				}
			}
			seenMu.Lock()
			defer seenMu.Unlock()
			if tt.wantPath != "" && seenPath != tt.wantPath {
				t.Errorf("backend path: got %q, want %q", seenPath, tt.wantPath)
			}
			if seenQuery != tt.wantQuery {
				t.Errorf("backend query: got %q, want %q", seenQuery, tt.wantQuery)
			}
			if seenAuth != "" {
				t.Errorf("backend saw Authorization %q; want it stripped", seenAuth)
			}
			switch res.StatusCode {
			case 503:
				if got := res.Header.Get("Retry-After"); got != "1" {
					t.Errorf("Retry-After: got %q, want 1", got)
				}
			case 401:
				if e := decodeError(t, body); e.Error.Code != "Unauthorized" {
					t.Errorf("code: got %q, want Unauthorized", e.Error.Code)
				}
			case 424:
				if got, want := res.Header.Get("ms-azureml-model-error-statuscode"), "500"; got != want {
					t.Errorf("ms-azureml-model-error-statuscode: got %q, want %q", got, want)
				}
				if got, want := res.Header.Get("ms-azureml-model-error-reason"), "Internal Server Error"; got != want {
					t.Errorf("ms-azureml-model-error-reason: got %q, want %q", got, want)
				}
				if got, want := res.Header.Get("Content-Type"), "text/plain"; got != want {
					t.Errorf("Content-Type: got %q, want the model's %q", got, want)
				}
			}
		})
	}
}

// A body without Content-Length that grows past MaxBodyBytes is cut off with 413.
func TestStatus413Streaming(t *testing.T) {
	addr := okBackend(t, "{}")
	g, _, front := newTestGateway(t, Config{MaxBodyBytes: 1024})
	g.Update(snapshot(endpoint("ep", dep("blue", addr))))
	for _, mirror := range []bool{false, true} {
		t.Run(map[bool]string{false: "streamed", true: "buffered for mirror"}[mirror], func(t *testing.T) {
			ep := endpoint("ep", dep("blue", addr), dep("green", addr))
			if mirror {
				ep.Mirror["green"] = 100
			}
			g.Update(snapshot(ep))
			pr, pw := io.Pipe()
			go func() {
				chunk := []byte(strings.Repeat("x", 512))
				for range 8 {
					if _, err := pw.Write(chunk); err != nil {
						return
					}
				}
				_ = pw.Close()
			}()
			req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep/score", pr)
			req.Header.Set("Authorization", "Bearer "+testKey)
			res, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			_ = pr.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status: got %d, want 413", res.StatusCode)
			}
		})
	}
}

// 408 comes after RequestTimeout, and the backend sees its request cancelled.
func TestStatus408CancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		// net/http notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		close(cancelled)
	})
	d := dep("blue", addr)
	d.RequestTimeout = 50 * time.Millisecond
	g, reg, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", d)))

	res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status: got %d, want 408 (body %s)", res.StatusCode, body)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never saw the cancellation")
	}
	if got := metricValue(t, reg, "plumbline_requests_total",
		map[string]string{"endpoint": "ep", "deployment": "blue", "code": "408", "model_code": ""}); got != 1 {
		t.Errorf("requests_total{code=408}: got %v, want 1", got)
	}
}

// Six concurrent requests on one instance with max_concurrent 1: two are
// admitted (one in flight, one queued), four get 429 at once, and the
// backend never holds two at a time.
func TestStatus429Admission(t *testing.T) {
	gt := newGate()
	addr := backend(t, gt.ServeHTTP)
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", d)))

	codes := make(chan int, 6)
	for range 6 {
		go func() {
			res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
			codes <- res.StatusCode
		}()
	}
	got := map[int]int{}
	for range 4 { // all rejections arrive while the backend still holds the first
		got[<-codes]++
	}
	close(gt.release)
	for range 2 {
		got[<-codes]++
	}
	if diff := cmp.Diff(map[int]int{200: 2, 429: 4}, got); diff != "" {
		t.Errorf("status counts (-want +got):\n%s", diff)
	}
	if maxSeen, total := gt.stats(); maxSeen != 1 || total != 2 {
		t.Errorf("backend: got max %d concurrent and %d total, want 1 and 2", maxSeen, total)
	}
}

// A queued request that waits longer than MaxQueueWait gets 429.
func TestStatus429QueueWait(t *testing.T) {
	gt := newGate()
	addr := backend(t, gt.ServeHTTP)
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	d.MaxQueueWait = 30 * time.Millisecond
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", d)))

	first := make(chan int, 1)
	go func() {
		res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
		first <- res.StatusCode
	}()
	<-gt.arrived
	res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("queued request: got %d, want 429 (%s)", res.StatusCode, body)
	}
	if e := decodeError(t, body); e.Error.Message != "Too many pending requests" {
		t.Errorf("message: got %q, want %q", e.Error.Message, "Too many pending requests")
	}
	close(gt.release)
	if got := <-first; got != 200 {
		t.Errorf("first request: got %d, want 200", got)
	}
}

func TestHostBasedRouting(t *testing.T) {
	var gotPath string
	var mu sync.Mutex
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotPath = r.URL.Path
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})
	d := dep("blue", addr)
	d.OpenAPIPath = "/openapi.json"
	g, _, front := newTestGateway(t, Config{Domains: []string{"localhost", ".Models.Example.test."}})
	g.Update(snapshot(endpoint("my-ep", d)))

	tests := []struct {
		name, host, path string
		wantStatus       int
		wantPath         string
	}{
		{"localhost with port", "my-ep.localhost:8443", "/score", 200, "/score"},
		{"localhost upper-case", "MY-EP.LOCALHOST", "/score", 200, "/score"},
		{"custom domain", "my-ep.models.example.test", "/score", 200, "/score"},
		{"custom domain trailing dot", "my-ep.models.example.test.", "/score", 200, "/score"},
		{"swagger", "my-ep.localhost", "/swagger.json", 200, "/openapi.json"},
		{"unknown endpoint", "other.localhost", "/score", 404, ""},
		{"bare domain", "localhost", "/score", 404, ""},
		{"nested label", "a.my-ep.localhost", "/score", 404, ""},
		{"foreign domain", "my-ep.example.org", "/score", 404, ""},
		{"ipv6 literal", "[::1]:8080", "/score", 404, ""},
		{"path-based wins on any host", "other.localhost", "/endpoints/my-ep/score", 200, "/score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			gotPath = ""
			mu.Unlock()
			res, body := call(t, front, "POST", tt.path, map[string]string{"Host": tt.host, "Authorization": "Bearer " + testKey}, "{}")
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", res.StatusCode, tt.wantStatus, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotPath != tt.wantPath {
				t.Errorf("backend path: got %q, want %q", gotPath, tt.wantPath)
			}
		})
	}
}

// A key regenerated in the next snapshot works at once; the old one stops.
func TestKeyRotation(t *testing.T) {
	addr := okBackend(t, "{}")
	g, _, front := newTestGateway(t, Config{})
	ep := endpoint("ep", dep("blue", addr))
	ep.Keys = []string{"old-primary", "secondary"}
	g.Update(snapshot(ep))
	if res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer("old-primary"), ""); res.StatusCode != 200 {
		t.Fatalf("old key before rotation: got %d, want 200", res.StatusCode)
	}
	ep2 := endpoint("ep", dep("blue", addr))
	ep2.Keys = []string{"new-primary", "secondary"}
	g.Update(snapshot(ep2))
	for _, tt := range []struct {
		key  string
		want int
	}{{"old-primary", 401}, {"new-primary", 200}, {"secondary", 200}} {
		if res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(tt.key), ""); res.StatusCode != tt.want {
			t.Errorf("key %s after rotation: got %d, want %d", tt.key, res.StatusCode, tt.want)
		}
	}
}

// fakeOIDC is an OIDCVerifier that accepts one token.
type fakeOIDC struct{ good, expired string }

func (f fakeOIDC) Verify(_ context.Context, tok string) error {
	switch tok {
	case f.good:
		return nil
	case f.expired:
		return auth.ErrTokenExpired
	}
	return auth.ErrTokenInvalid
}

func TestAADToken(t *testing.T) {
	addr := okBackend(t, "{}")
	g, _, front := newTestGateway(t, Config{OIDC: fakeOIDC{good: "aad-good", expired: "aad-old"}})
	ep := endpoint("ep", dep("blue", addr))
	ep.AuthMode = "aad_token"
	g.Update(snapshot(ep))
	for _, tt := range []struct {
		tok     string
		want    int
		wantMsg string
	}{{"aad-good", 200, ""}, {"aad-old", 401, "token expired"}, {"forged", 401, "invalid credentials"}} {
		res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(tt.tok), "")
		if res.StatusCode != tt.want {
			t.Errorf("token %s: got %d, want %d", tt.tok, res.StatusCode, tt.want)
		}
		if tt.wantMsg != "" {
			if e := decodeError(t, body); e.Error.Message != tt.wantMsg {
				t.Errorf("token %s: message got %q, want %q", tt.tok, e.Error.Message, tt.wantMsg)
			}
		}
	}
}

// auth's verifiers satisfy the interfaces the gateway declares.
var (
	_ TokenVerifier = (*auth.TokenIssuer)(nil)
	_ OIDCVerifier  = (*auth.OIDCVerifier)(nil)
)

func TestMetrics(t *testing.T) {
	ok := okBackend(t, "{}")
	failing := backend(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadRequest) })
	g, reg, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", ok, ok), dep("red", failing))))

	for range 3 {
		call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
	}
	call(t, front, "POST", "/endpoints/ep/score", map[string]string{"Authorization": "Bearer " + testKey, "azureml-model-deployment": "red"}, "{}")
	call(t, front, "POST", "/endpoints/ep/score", bearer("wrong"), "{}")
	call(t, front, "POST", "/endpoints/who/score", bearer(testKey), "{}")

	dl := func(d string) map[string]string { return map[string]string{"endpoint": "ep", "deployment": d} }
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"200s", "plumbline_requests_total", map[string]string{"endpoint": "ep", "deployment": "blue", "code": "200", "model_code": "200"}, 3},
		{"424 with the model's code", "plumbline_requests_total", map[string]string{"endpoint": "ep", "deployment": "red", "code": "424", "model_code": "400"}, 1},
		{"401 before any deployment", "plumbline_requests_total", map[string]string{"endpoint": "ep", "deployment": "", "code": "401", "model_code": ""}, 1},
		{"unknown endpoint, no label growth", "plumbline_requests_total", map[string]string{"endpoint": "", "deployment": "", "code": "404", "model_code": ""}, 1},
		{"duration observations", "plumbline_request_duration_seconds", dl("blue"), 3},
		{"ready instances", "plumbline_ready_instances", dl("blue"), 2},
		{"nothing in flight", "plumbline_inflight_requests", dl("blue"), 0},
		{"nothing queued", "plumbline_queue_depth", dl("blue"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricValue(t, reg, tt.metric, tt.labels); got != tt.want {
				t.Errorf("%s%v: got %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

// Two gateways may share a registry (tests, a restart in-process).
func TestSharedRegistry(t *testing.T) {
	_, reg, _ := newTestGateway(t, Config{})
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Errorf("second gateway on the same registry: %v", err)
	}
}
