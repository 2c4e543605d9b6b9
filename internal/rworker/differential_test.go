package rworker

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The differential corpus: each plumber API is served by plumber's own
// server (plumbline's launcher, as the process driver runs it) and by the
// lean runtime, and the same requests must get the same status, headers
// and body from both.

// ignoredHeaders differ between any two servers, or belong to the
// connection.
var ignoredHeaders = []string{"Date", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding"}

func compareAnswers(t *testing.T, c call, want, got answer) {
	t.Helper()
	name := c.Method + " " + c.Path
	if got.Status != want.Status {
		t.Errorf("%s: status %d (lean), want %d (plumber)\nlean body: %.300s\nplumber body: %.300s", name, got.Status, want.Status, got.Body, want.Body)
	}
	for _, h := range headerNames(want.Header, got.Header) {
		if slices.Contains(ignoredHeaders, h) {
			continue
		}
		if w, g := want.Header.Values(h), got.Header.Values(h); !slices.Equal(w, g) {
			t.Errorf("%s: header %s %q (lean), want %q (plumber)", name, h, g, w)
		}
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("%s: body (lean) differs from plumber's:\nlean:    %.400q\nplumber: %.400q", name, got.Body, want.Body)
	}
}

func headerNames(hs ...http.Header) []string {
	var out []string
	for _, h := range hs {
		for k := range h {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// featureCalls exercise testdata/corpus/features/plumber.R.
func featureCalls() []call {
	big := strings.Repeat("x", 300_000)
	return []call{
		{Path: "/hello"},
		{Path: "/unboxed"},
		{Path: "/sum?a=1&b=2.5"},
		{Path: "/sum?a=1"}, // a missing argument: plumber's 500
		{Path: "/items/42"},
		{Path: "/items/-7"},
		{Path: "/items/notanint"}, // no route matches: 404
		{Path: "/echo/a%20b%2Fc?q=%20x&flag"},
		{Method: "POST", Path: "/args", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"x": 1.5, "y": 2}`},
		{Method: "POST", Path: "/args", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"x": 1}`},
		{Method: "POST", Path: "/args", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"x": `}, // broken JSON
		{Method: "POST", Path: "/body", Header: map[string]string{"Content-Type": "application/json"}, Body: "{\"a\": [1, 2],\n \"b\": \"ü\"}"},
		{Method: "POST", Path: "/body", Body: `{"no": "content type"}`},
		{Method: "POST", Path: "/body", Header: map[string]string{"Content-Type": "text/plain"}, Body: "line one\nline two"},
		{Method: "POST", Path: "/form", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: "name=Ada+L&age=36"},
		{Method: "POST", Path: "/created", Header: map[string]string{"Content-Type": "application/json"}, Body: `{}`},
		{Path: "/fail"},
		{Path: "/warn"},
		{Path: "/teapot"},
		{Path: "/text"},
		{Path: "/csv"},
		{Path: "/plot"},
		{Path: "/html"},
		{Path: "/raw"},
		{Path: "/private/data"},
		{Path: "/private/data", Header: map[string]string{"X-Token": "t0k3n"}},
		{Path: "/private/open"},
		{Path: "/multi"},
		{Method: "PUT", Path: "/multi"},
		{Method: "DELETE", Path: "/multi"}, // 405 with Allow
		{Method: "HEAD", Path: "/hello"},
		{Path: "/nowhere"},
		{Method: "POST", Path: "/big", Header: map[string]string{"Content-Type": "text/plain"}, Body: big},
		{Path: "/large"},
		{Path: "/static/hello.txt"},
		{Path: "/static/"},
		{Path: "/static/missing.txt"},
		{Path: "/static/../plumber.R"},
		{Path: "/sub/ping"},
		{Path: "/openapi.json"},
		{Path: "/hello", Header: map[string]string{"Cookie": "a=1; b=2"}},
		// The same endpoint with other spellings of a content type, and
		// other parsers in turn (the lean router picks a parser once per
		// endpoint and content type).
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "Application/JSON; charset=UTF-8"}, Body: `{"a": [3]}`},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "text/plain; charset=UTF-8"}, Body: `{"a": [3]}`},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "application/json"}, Body: `[1, 2]`},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: "a=3"},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": ";"}, Body: `{"a": 4}`},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "application/vnd.custom+json"}, Body: `{"a": 5}`},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "application/json"}, Body: ""},
		{Method: "POST", Path: "/parsed", Header: map[string]string{"Content-Type": "application/json; charset=latin1"}, Body: "{\"b\": \"\xfc\"}"},
		{Method: "POST", Path: "/parsed", Body: `{"no": "content type"}`},
		{Method: "POST", Path: "/parsed", Body: `no content type, not JSON`},
		// Handlers of req and res alone: the body is parsed when read, and
		// invalid JSON still gets plumber's 500 before the handler runs.
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"a": 1}`},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"a": `},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: "{\"a\": \"\xfc\"}"},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json; charset=latin1"}, Body: "{\"a\": \"\xfc\"}"},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: "{\"a\": \"x\u0000y\"}"},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: "[1, \x00]"},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "text/plain"}, Body: `{"a": `},
		{Method: "POST", Path: "/ignores-body", Body: `{"a": `},
		{Method: "POST", Path: "/ignores-body", Header: map[string]string{"Content-Type": "application/json"}, Body: ""},
		{Method: "POST", Path: "/reads-body", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"a": [1, 2], "req": 3, "res": {"b": null}}`},
		{Method: "POST", Path: "/reads-body", Header: map[string]string{"Content-Type": "application/json"}, Body: `[{"x": 1}, {"x": 2}]`},
		{Method: "POST", Path: "/reads-body?q=1", Header: map[string]string{"Content-Type": "application/json"}, Body: `"text"`},
		{Method: "POST", Path: "/reads-body", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"a": `},
		{Method: "POST", Path: "/reads-body", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: "a=1&b=2"},
		{Method: "POST", Path: "/no-args", Header: map[string]string{"Content-Type": "application/json"}, Body: `{"a": 1}`},
		{Method: "POST", Path: "/no-args", Header: map[string]string{"Content-Type": "application/json"}, Body: `nope`},
		// plumber's default JSON serializers (called directly by the lean
		// router) and the serializers it leaves to plumber.
		{Path: "/json/values"},
		{Path: "/json/boxed"},
		{Path: "/json/digits"},
		{Path: "/json/typed"},
		{Path: "/json/switch"},
		{Path: "/json/nocontent"},
		{Path: "/json/attachment"},
		{Path: "/json/values"},
		{Path: "/json/switch"},
		{Path: "/json/boxed"},
		// A handler's status, headers, cookies and serializer apply to its
		// own answer only (the lean router reuses one response object per
		// worker): each worker serves one of these after another.
		{Method: "POST", Path: "/created", Header: map[string]string{"Content-Type": "application/json"}, Body: `{}`},
		{Method: "POST", Path: "/created", Header: map[string]string{"Content-Type": "application/json"}, Body: `{}`},
		{Path: "/hello"},
		{Path: "/hello"},
		{Path: "/raw"},
		{Path: "/raw"},
		{Path: "/unboxed"},
		{Path: "/unboxed"},
		{Path: "/teapot"},
		{Path: "/teapot"},
		{Path: "/text"},
		{Path: "/text"},
		{Path: "/fail"},
		{Path: "/fail"},
		{Path: "/hello"},
		{Path: "/hello"},
	}
}

func TestDifferentialFeatures(t *testing.T) {
	requireR(t, "readr")
	a := app{codeDir: "testdata/corpus/features", entry: "plumber.R"}
	ref := startPlumber(t, a, "/hello")
	calls := featureCalls()
	want := make([]answer, len(calls))
	for i, c := range calls {
		want[i] = do(t, ref, c)
	}
	for _, router := range []string{"compiled", "call"} {
		t.Run(router, func(t *testing.T) {
			l := startLean(t, a, Config{Workers: 2, Router: router})
			st := l.status(t)
			if st.Router != router {
				t.Fatalf("router %q, want %q", st.Router, router)
			}
			// The compiled router calls jsonlite itself for plumber's
			// default JSON serializers: these calls test that path.
			if want := router == "compiled"; slices.Contains(st.FastPaths, "json") != want {
				t.Fatalf("fast paths %q: json in use %v, want %v", st.FastPaths, !want, want)
			}
			for i, c := range calls {
				compareAnswers(t, c, want[i], do(t, l.url, c))
			}
			// plumber.R's functions were compiled before the workers were
			// forked (a fork runs with R's compiler off): the first call
			// of a handler already runs compiled.
			if got := do(t, l.url, call{Path: "/compiled"}); got.Status != http.StatusOK || string(got.Body) != `{"compiled":true}` {
				t.Errorf("GET /compiled: %d %s, want 200 {\"compiled\":true}", got.Status, got.Body)
			}
		})
	}
}

// TestDifferentialExamples serves the examples' plumber.R files (the seed's
// iris crate and Azure's multi-model example) with their sample requests and
// a few bad ones.
func TestDifferentialExamples(t *testing.T) {
	rscript := requireR(t, "randomForest")
	multiModels := t.TempDir()
	if out, err := exec.Command(rscript, "../../examples/r-multimodel/train.R", filepath.Join(multiModels, "models")).CombinedOutput(); err != nil {
		t.Fatalf("train the multi-model example: %v\n%s", err, out)
	}
	json := map[string]string{"Content-Type": "application/json"}
	cases := []struct {
		name  string
		app   app
		calls []call
	}{
		{"r-iris", app{codeDir: "../../examples/r-iris/src", entry: "plumber.R", modelDir: trainIris(t)}, []call{
			{Path: "/live"}, {Path: "/ready"},
			{Method: "POST", Path: "/score", Header: json, Body: readFile(t, "../../examples/r-iris/sample_request.json")},
			{Method: "POST", Path: "/score", Body: readFile(t, "../../examples/r-iris/sample_request.json")},
			{Method: "POST", Path: "/score", Header: json, Body: `{"sepal_length": [6.7, 5.1], "sepal_width": [3.3, 3.5], "petal_length": [5.7, 1.4], "petal_width": [2.5, 0.2]}`},
			{Method: "POST", Path: "/score", Header: json, Body: `{"sepal_length": [6.7]}`},
			{Method: "POST", Path: "/score", Header: json, Body: `not json`},
			{Method: "GET", Path: "/score"},
		}},
		{"r-multimodel", app{codeDir: "../../examples/r-multimodel/scripts", entry: "plumber.R", modelDir: multiModels}, []call{
			{Path: "/live"}, {Path: "/ready"},
			{Method: "POST", Path: "/score", Header: json, Body: readFile(t, "../../examples/r-multimodel/sample_request.json")},
			{Method: "POST", Path: "/score", Header: json, Body: `{"model": "c", "x1": [0.1], "x2": [0.2]}`},
			{Method: "POST", Path: "/score", Header: json, Body: `{"model": "z", "x1": [0.1], "x2": [0.2]}`},
		}},
		{"hooks", app{codeDir: "testdata/corpus/hooks", entry: "plumber.R"}, []call{{Path: "/hooked"}, {Path: "/nowhere"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := startPlumber(t, tc.app, "/openapi.json")
			want := make([]answer, len(tc.calls))
			for i, c := range tc.calls {
				want[i] = do(t, ref, c)
			}
			l := startLean(t, tc.app, Config{})
			for i, c := range tc.calls {
				compareAnswers(t, c, want[i], do(t, l.url, c))
			}
			if tc.name == "hooks" {
				if r := l.status(t).Router; r != "call" {
					t.Errorf("an API with serve hooks runs on router %q, want call", r)
				}
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
