package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plumbline/plumbline/internal/registry"
)

// TestFetch: plumbline fetch downloads with the token, unpacks, verifies
// the digest, retries a failing server, and refuses content that does not
// hash to the digest it asked for.
func TestFetch(t *testing.T) {
	src := filepath.Join(t.TempDir(), "models")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "crate.bin"), []byte("model bytes"), 0o644)
	digest, err := registry.LocalDigest(src)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "models")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "crate.bin"), []byte("tampered"), 0o644)

	var calls atomic.Int32
	serve := src
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable) // retried
			return
		}
		if r.Header.Get("Authorization") != "Bearer the-token" {
			http.Error(w, `{"code":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != fetchPath+digest {
			http.NotFound(w, r)
			return
		}
		registry.WriteTar(r.Context(), w, serve, nil)
	}))
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("the-token\n"), 0o600)

	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := Main(context.Background(), args, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	dst := filepath.Join(t.TempDir(), "model")
	code, out := run("fetch", "--server", srv.URL, "--token-file", tokFile, digest+"="+dst)
	if code != 0 {
		t.Fatalf("fetch = %d:\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "models", "crate.bin")); err != nil || string(b) != "model bytes" {
		t.Errorf("fetched file = %q, %v", b, err)
	}
	if !strings.Contains(out, "attempt 1: the server answered 503") || !strings.Contains(out, "verified") {
		t.Errorf("output lacks the retry or the verification:\n%s", out)
	}

	serve = other // the server sends other content under the digest
	code, out = run("fetch", "--server", srv.URL, "--token-file", tokFile, digest+"="+filepath.Join(t.TempDir(), "m"))
	if code == 0 || !strings.Contains(out, "refusing it") {
		t.Errorf("fetch of content that does not match = %d:\n%s\nwant a refusal", code, out)
	}

	os.WriteFile(tokFile, []byte("wrong"), 0o600)
	code, out = run("fetch", "--server", srv.URL, "--token-file", tokFile, digest+"="+filepath.Join(t.TempDir(), "m"))
	if code == 0 || !strings.Contains(out, "401") || strings.Contains(out, "attempt") {
		t.Errorf("fetch with a bad token = %d:\n%s\nwant a 401 at once, not retried", code, out)
	}

	code, out = run("fetch", "--server", srv.URL, "--token-file", tokFile, "nodigest=/x")
	if code != 2 || !strings.Contains(out, "want sha256:<64 hex>=DIR") {
		t.Errorf("fetch with a bad argument = %d:\n%s", code, out)
	}
}
