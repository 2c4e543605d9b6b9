package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

// newMux mounts the studio the way `plumbline serve` does, next to a
// catch-all (the gateway there).
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(Prefix, Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gateway", http.StatusTeapot) })
	return mux
}

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesFiles(t *testing.T) {
	mux := newMux()
	tests := []struct {
		name, path, contentType, contains string
	}{
		{"index", "/studio/", "text/html; charset=utf-8", `<script type="module" src="js/app.js">`},
		{"module", "/studio/js/app.js", "text/javascript; charset=utf-8", "export class View"},
		{"style", "/studio/studio.css", "text/css; charset=utf-8", ":root"},
		{"icon", "/studio/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, mux, http.MethodGet, tt.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: got status %d, want 200", tt.path, rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.contentType {
				t.Errorf("GET %s: got Content-Type %q, want %q", tt.path, got, tt.contentType)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("GET %s: body does not contain %q", tt.path, tt.contains)
			}
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "ETag"} {
				if rec.Header().Get(h) == "" {
					t.Errorf("GET %s: no %s header", tt.path, h)
				}
			}
		})
	}
}

func TestRedirectsBarePrefix(t *testing.T) {
	rec := get(t, newMux(), http.MethodGet, "/studio", nil)
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/studio/" {
		t.Fatalf("GET /studio: got %d Location %q, want a redirect to /studio/", rec.Code, rec.Header().Get("Location"))
	}
}

func TestETagRevalidation(t *testing.T) {
	h := Handler()
	first := get(t, h, http.MethodGet, "/studio/js/api.js", nil)
	tag := first.Header().Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	again := get(t, h, http.MethodGet, "/studio/js/api.js", map[string]string{"If-None-Match": tag})
	if again.Code != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match: got status %d, want 304", again.Code)
	}
	if idx := get(t, h, http.MethodGet, "/studio/", nil); idx.Header().Get("ETag") == "" {
		t.Error("the index has no ETag")
	}
}

func TestRefusesOtherMethodsAndUnknownFiles(t *testing.T) {
	h := Handler()
	if rec := get(t, h, http.MethodPost, "/studio/", nil); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /studio/: got %d (Allow %q), want 405 with Allow: GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
	if rec := get(t, h, http.MethodGet, "/studio/nope.js", nil); rec.Code != http.StatusNotFound {
		t.Errorf("GET /studio/nope.js: got %d, want 404", rec.Code)
	}
}

// The pages must work offline and under the Content-Security-Policy: no
// URL off this origin, no inline script or style, no HTML built from
// strings, and every module import and page reference resolves to an
// embedded file.
func TestAssetsAreSelfContained(t *testing.T) {
	files, err := fs.Sub(embedded, "static")
	if err != nil {
		t.Fatal(err)
	}
	absURL := regexp.MustCompile(`https?://[^\s"'` + "`" + `)]+`)
	imports := regexp.MustCompile(`(?:from\s+|import\()\s*'([^']+)'`)
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`)
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"}
	n := 0
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		text := string(b)
		for _, u := range absURL.FindAllString(text, -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s refers to %s: the studio must not load anything from another origin", p, u)
			}
		}
		switch path.Ext(p) {
		case ".js":
			for _, f := range forbidden {
				if strings.Contains(text, f) {
					t.Errorf("%s uses %s: build elements with dom.js's h() so server text never becomes markup", p, f)
				}
			}
			for _, m := range imports.FindAllStringSubmatch(text, -1) {
				target := path.Join(path.Dir(p), m[1])
				if _, err := fs.Stat(files, target); err != nil {
					t.Errorf("%s imports %s, which is not embedded (%v)", p, m[1], err)
				}
			}
		case ".html":
			if strings.Contains(text, " style=") || regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(text) {
				t.Errorf("%s has an inline style or script, which the Content-Security-Policy forbids", p)
			}
			for _, m := range refs.FindAllStringSubmatch(text, -1) {
				if _, err := fs.Stat(files, path.Join(path.Dir(p), m[1])); err != nil {
					t.Errorf("%s refers to %s, which is not embedded (%v)", p, m[1], err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d embedded files; is static/ embedded?", n)
	}
}
