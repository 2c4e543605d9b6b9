package plumber

import (
	"fmt"
	"slices"
	"strings"
)

// LeanBlocker is something a plumber script uses that only plumber's own
// server (httpuv and its event loop) serves, so plumbline's lean R runtime
// does not run the script.
type LeanBlocker struct {
	// Line is the 1-based line of the first use.
	Line int
	// What says what it is and why, for the deployment's event.
	What string
}

func (b LeanBlocker) String() string { return fmt.Sprintf("line %d %s", b.Line, b.What) }

// asyncPackages make endpoints asynchronous: they answer with promises that
// plumber's own server resolves on its event loop while it serves others.
var asyncPackages = []string{"promises", "future", "later", "coro", "mirai"}

// LeanBlockers returns what in an R plumber script the lean runtime cannot
// serve, first use of each kind first, in source order:
//
//   - asynchronous endpoints: the promises, future, later, coro or mirai
//     packages (x::f, library(x), require(x), requireNamespace("x")), or
//     future_promise();
//   - websockets: a handler named onWSOpen;
//   - httpuv used directly (httpuv::…);
//   - an exit hook: pr_hook(pr, "exit", …), pr$registerHook("exit", …),
//     pr_hooks(pr, list(exit = …)), pr$registerHooks(list(exit = …)).
//
// Comments and strings are not code. What the script builds at run time
// (an exit hook registered through a variable) is found by the lean
// runtime itself once the script is loaded, which then serves it with
// plumber's own server (see package rworker).
func LeanBlockers(src []byte) []LeanBlocker {
	toks, pos := lexRPos(src)
	var out []LeanBlocker
	seen := map[string]bool{}
	add := func(i int, kind, what string) {
		if seen[kind] {
			return
		}
		seen[kind] = true
		out = append(out, LeanBlocker{Line: 1 + strings.Count(string(src[:pos[i]]), "\n"), What: what})
	}
	async := func(i int, how string) {
		add(i, "async", how+": asynchronous endpoints need plumber's own event loop")
	}
	for i, t := range toks {
		if t.kind != tokIdent && t.kind != tokString {
			continue
		}
		nsCall := i+1 < len(toks) && toks[i+1].kind == tokOp && (toks[i+1].val == "::" || toks[i+1].val == ":::")
		switch {
		case nsCall && slices.Contains(asyncPackages, t.val):
			async(i, "uses "+t.val)
		case nsCall && t.val == "httpuv":
			add(i, "httpuv", "calls httpuv directly (httpuv::), which needs plumber's own server")
		case t.kind == tokIdent && t.val == "onWSOpen":
			add(i, "websocket", "handles websockets (onWSOpen), which only plumber's own server accepts")
		case t.kind == tokIdent && t.val == "future_promise" && calledAt(toks, i):
			async(i, "calls future_promise()")
		case t.kind == tokIdent && calledAtOrMethod(toks, i):
			args, _ := callArgs(toks, i+1)
			switch t.val {
			case "library", "require", "requireNamespace", "loadNamespace":
				if a, ok := pickArg(args, "package"); ok && len(a.toks) == 1 && slices.Contains(asyncPackages, a.toks[0].val) {
					async(i, "loads "+a.toks[0].val)
				}
			case "pr_hook", "registerHook":
				for _, a := range args {
					if len(a.toks) == 1 && a.toks[0].kind == tokString && a.toks[0].val == "exit" {
						add(i, "exit", "registers an exit hook ("+t.val+"), which runs when plumber's own server stops")
					}
				}
			case "pr_hooks", "registerHooks":
				for _, a := range args {
					for j := 0; j+1 < len(a.toks); j++ {
						if (a.toks[j].kind == tokIdent || a.toks[j].kind == tokString) && a.toks[j].val == "exit" && a.toks[j+1] == (token{tokOp, "="}) {
							add(i, "exit", "registers an exit hook ("+t.val+"), which runs when plumber's own server stops")
						}
					}
				}
			}
		}
	}
	return out
}

// calledAtOrMethod reports whether toks[i] is called: f(…), ns::f(…) or
// obj$f(…).
func calledAtOrMethod(toks []token, i int) bool {
	return i+1 < len(toks) && toks[i+1] == (token{tokOp, "("})
}
