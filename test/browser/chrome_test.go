package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one browser step (a click, a wait for the page).
const stepTimeout = 30 * time.Second

// browser is one headless Chromium tab and what it wrote to its console.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go

	mu       sync.Mutex // protects problems
	problems []string   // console errors, exceptions, failed loads
}

// newBrowser starts Debian's Chromium headless with a fresh profile and
// collects every console error, uncaught exception and error entry of the
// browser log (a failed load, a Content-Security-Policy violation).
func newBrowser(t *testing.T, shots string) *browser {
	t.Helper()
	return newBrowserWith(t, shots, true)
}

// newBrowserWith is newBrowser; with ignoreCertErrors false Chromium checks
// the server's certificate against what it trusts (its NSS database under
// $HOME/.pki/nssdb, with HOME from env), and env is added to its
// environment.
func newBrowserWith(t *testing.T, shots string, ignoreCertErrors bool, env ...string) *browser {
	t.Helper()
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
	}
	if ignoreCertErrors {
		// The server's certificate comes from its own local CA.
		opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
	}
	if len(env) > 0 {
		opts = append(opts, chromedp.Env(env...))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, shots: shots}
	messages := chromedp.Console(ctx) // starts the browser
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				where := m.URL
				if where != "" {
					where = fmt.Sprintf(" (%s:%d)", where, m.Line+1)
				}
				b.problems = append(b.problems, fmt.Sprintf("%s%s", m, where))
				b.mu.Unlock()
			}
		}
	}()
	b.do("start the viewport at 1280×800", chromedp.EmulateViewport(1280, 800))
	return b
}

// consoleProblems returns what the page reported as errors so far.
func (b *browser) consoleProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// fatalf fails the test with the page's visible text, which says what the
// user would have seen.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if len(text) > 6000 {
		text = text[:6000] + "…"
	}
	b.t.Fatalf(format+"\n--- the page showed:\n%s\n--- console problems: %q", append(args, text, b.consoleProblems())...)
}

// do runs actions as one step.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		b.fatalf("waiting until %s (%s): %v", what, expr, err)
	}
}

// waitText waits until the element matching sel contains want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%s shows %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%s)?.textContent ?? "").includes(%s)`, jsString(sel), jsString(want)))
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// evalAsync evaluates an expression that gives a promise and decodes what
// it resolves to.
func evalAsync[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fatalf("evaluate (async): %v", err)
	}
	return v
}

// click clicks the first element matching the CSS selector.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// typeInto replaces an input's value by typing, so the page sees the same
// input events as from a user.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.do("type into "+sel,
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = ""`, jsString(sel))),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// setValue sets a field's value directly (a long JSON text, a <select>).
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	b.do("set the value of "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// screenshot saves the viewport as <name>.png in the screenshot folder.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	// Move the pointer away so no hover style shows, and let the page
	// settle (charts, fonts) for a frame or two.
	b.do("settle before the screenshot "+name,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 0, 0),
		chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`),
		chromedp.Sleep(150*time.Millisecond))
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot %s", path)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshotDir is docs/screenshots when PLUMBLINE_UPDATE_SCREENSHOTS=1,
// else a temporary folder.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("PLUMBLINE_UPDATE_SCREENSHOTS") != "1" {
		return t.TempDir()
	}
	dir := filepath.Join(repoRoot, "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// onlyProblems reports the console problems, one per line.
func onlyProblems(ps []string) string {
	return "  " + strings.Join(ps, "\n  ")
}
