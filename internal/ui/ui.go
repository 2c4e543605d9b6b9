// Package ui is plumbline studio: the web pages under /studio/ that list
// endpoints and models, show deployments and their instances, test an
// endpoint, shift its traffic, and follow its logs and metrics.
//
// The pages are static files embedded in the binary (hand-written HTML, CSS
// and JavaScript modules; no build step, nothing fetched from the internet).
// They run in the browser and call the same-origin control-plane API
// (/api/v1), /metrics and the scoring gateway with the admin token the user
// signs in with. This package therefore holds no state and no credentials:
// it serves files with strict security headers and nothing else.
//
// It must not import any other plumbline package.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the path the studio is mounted at; `plumbline serve` routes it
// with mux.Handle(ui.Prefix, ui.Handler()). The mux redirects the bare
// "/studio" to it.
const Prefix = "/studio/"

//go:embed static
var embedded embed.FS

// contentSecurityPolicy allows the pages to load only their own files and to
// talk only to their own origin: no inline scripts or style attributes, no
// third-party anything, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the studio's files under Prefix. Every answer carries
// ETag validators (the files change only with the binary) and security
// headers; only GET and HEAD are allowed.
func Handler() http.Handler {
	files, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(fmt.Sprintf("ui: embedded files: %v", err)) // cannot happen: static is embedded
	}
	etags, err := computeETags(files)
	if err != nil {
		panic(fmt.Sprintf("ui: embedded files: %v", err))
	}
	fileServer := http.StripPrefix(strings.TrimSuffix(Prefix, "/"), http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// Revalidate every time; the ETag makes that a 304.
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		if tag, ok := etags[name]; ok {
			h.Set("ETag", tag)
		}
		fileServer.ServeHTTP(w, r)
	})
}

// computeETags hashes every embedded file once.
func computeETags(files fs.FS) (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return out, err
}
