package plumber

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLeanBlockers(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []LeanBlocker
	}{
		{"plain API", "#* @get /x\nfunction() 1\n", nil},
		{"promises namespace", "#* @get /x\nfunction() {\n  promises::promise_resolve(1)\n}\n",
			[]LeanBlocker{{3, "uses promises: asynchronous endpoints need plumber's own event loop"}}},
		{"library(future)", "library(future)\nplan(multisession)\n",
			[]LeanBlocker{{1, "loads future: asynchronous endpoints need plumber's own event loop"}}},
		{"requireNamespace string", "requireNamespace(\"later\")\n",
			[]LeanBlocker{{1, "loads later: asynchronous endpoints need plumber's own event loop"}}},
		{"future_promise", "f <- function() future_promise({ 1 })\n",
			[]LeanBlocker{{1, "calls future_promise(): asynchronous endpoints need plumber's own event loop"}}},
		{"exit hook, pr_hook", "#* @plumber\nfunction(pr) {\n  pr %>%\n    pr_hook(\"exit\", function() cat(\"bye\"))\n}\n",
			[]LeanBlocker{{4, "registers an exit hook (pr_hook), which runs when plumber's own server stops"}}},
		{"exit hook, registerHooks", "#* @plumber\nfunction(pr) pr$registerHooks(list(exit = function() NULL))\n",
			[]LeanBlocker{{2, "registers an exit hook (registerHooks), which runs when plumber's own server stops"}}},
		{"other hooks are served", "#* @plumber\nfunction(pr) pr_hooks(pr, list(preroute = function() NULL))\n", nil},
		{"websockets", "pr$onWSOpen <- function(ws) ws$send('hi')\n",
			[]LeanBlocker{{1, "handles websockets (onWSOpen), which only plumber's own server accepts"}}},
		{"httpuv", "s <- httpuv::startServer('0.0.0.0', 9000, list())\n",
			[]LeanBlocker{{1, "calls httpuv directly (httpuv::), which needs plumber's own server"}}},
		{"only in comments and strings", "# promises::then()\nx <- \"library(future)\"\n#* pr_hook('exit')\n", nil},
		{"first of each kind", "library(promises)\nlibrary(future)\nonWSOpen <- 1\n", []LeanBlocker{
			{1, "loads promises: asynchronous endpoints need plumber's own event loop"},
			{3, "handles websockets (onWSOpen), which only plumber's own server accepts"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, LeanBlockers([]byte(tc.src))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The seed's plumber.R and the examples run on the lean runtime.
func TestLeanBlockersExamples(t *testing.T) {
	for _, f := range []string{"testdata/seed/plumber.R", "../../examples/r-iris/src/plumber.R", "../../examples/r-multimodel/scripts/plumber.R"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := LeanBlockers(src); len(got) > 0 {
			t.Errorf("%s: %v, want none", f, got)
		}
	}
}

func FuzzLeanBlockers(f *testing.F) {
	f.Add([]byte("library(promises)\npr_hook(pr, \"exit\", f)\n"))
	f.Add([]byte("pr_hooks(pr, list(exit = function() 1))"))
	f.Add([]byte("r\"(unterminated"))
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, b := range LeanBlockers(src) {
			if b.Line < 1 {
				t.Fatalf("line %d", b.Line)
			}
		}
	})
}
