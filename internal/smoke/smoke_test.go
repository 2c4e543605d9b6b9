package smoke

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/reconcile"
)

func TestTestSample(t *testing.T) {
	var gotBody, gotType, gotID string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotType, gotID = string(b), r.Header.Get("Content-Type"), r.Header.Get("x-request-id")
		switch r.URL.Path {
		case "/score":
			io.WriteString(w, `{"prediction":[1]}`)
		case "/fails":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "{\"error\": \"500 - Internal server error\",\n \"message\": \"object 'cyl' not found\"}")
		case "/slow":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	s := New()
	target := func(path string) reconcile.SampleTarget {
		return reconcile.SampleTarget{Addr: addr, Path: path, Body: []byte(`{"wt":[2.6]}`), Timeout: time.Second}
	}

	if err := s.TestSample(context.Background(), target("/score")); err != nil {
		t.Fatalf("a 200 answer: %v", err)
	}
	if gotBody != `{"wt":[2.6]}` || gotType != "application/json" || !strings.HasPrefix(gotID, "sample-") {
		t.Errorf("request: body %q, content type %q, x-request-id %q; want the sample as JSON with a sample- id", gotBody, gotType, gotID)
	}

	tests := []struct{ path, want string }{
		{"/fails", `POST /fails answered 500 Internal Server Error: {"error": "500 - Internal server error", "message": "object 'cyl' not found"}`},
		{"/nope", "POST /nope answered 404 Not Found: 404 page not found"},
		{"/slow", "no answer within 1s (request_timeout_ms); x-request-id sample-"},
	}
	for _, tt := range tests {
		err := s.TestSample(context.Background(), target(tt.path))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.path, err, tt.want)
		}
	}

	t.Run("connection refused", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		a := l.Addr().String()
		l.Close()
		err := s.TestSample(context.Background(), reconcile.SampleTarget{Addr: a, Path: "/score", Body: []byte(`{}`), Timeout: time.Second})
		if err == nil || !strings.Contains(err.Error(), "POST /score failed") {
			t.Errorf("got %v, want a connection failure", err)
		}
	})

	t.Run("unix socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		us := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		go us.Serve(l)
		defer us.Close()
		if err := s.TestSample(context.Background(), reconcile.SampleTarget{Addr: "unix:" + sock, Path: "/score", Body: []byte(`{}`), Timeout: time.Second}); err != nil {
			t.Errorf("unix socket instance: %v", err)
		}
	})
}
