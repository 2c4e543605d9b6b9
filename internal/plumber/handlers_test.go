package plumber

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startScript launches the launcher on testdata/<dir> and waits for /live.
func startScript(t *testing.T, dir string, env ...string) (base string, log *syncBuffer) {
	t.Helper()
	port := freePort(t)
	cmd, log := launch(t, "testdata/"+dir, port, env...)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	waitLive(t, base+"/live", log)
	return base, log
}

// post sends body to url with a request id, as the gateway does.
func post(t *testing.T, url, requestID string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(`{"wt":[2.6]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-request-id", requestID)
	status, body := do(t, req)
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	return status, out
}

// waitLog waits until the log matches re (R writes stderr asynchronously
// to the test's reads).
func waitLog(t *testing.T, log *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindString(log.String()); m != "" {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("log has no line matching %s:\n%s", re, log.String())
	return ""
}

func TestLauncherRErrorsReachTheCaller(t *testing.T) {
	requirePlumber(t)
	base, log := startScript(t, "throws",
		EnvErrorDetail+"=true", EnvEndpoint+"=cars", EnvDeployment+"=blue")

	const rid = "3f2c7a1e-0000-4000-8000-000000000001"
	status, body := post(t, base+"/score", rid)
	if status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", status)
	}
	want := map[string]any{
		"error":      "500 - Internal server error", // plumber's own body, kept
		"message":    "object 'cyl' not found",
		"call":       "eval(substitute(expr), data, enclos = parent.frame())",
		"class":      []any{"simpleError", "error", "condition"},
		"request_id": rid,
		"endpoint":   "cars",
		"deployment": "blue",
		"log":        "the instance log has this error under the request id",
	}
	if d := cmp.Diff(want, body); d != "" {
		t.Errorf("error body (-want +got):\n%s", d)
	}

	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`
	for _, re := range []string{
		`(?m)^` + ts + ` ERROR x-request-id=` + rid + ` POST /score: R error answered with status 500: in eval\(.*\): object 'cyl' not found \[simpleError/error/condition\]$`,
		`(?m)^` + ts + ` WARNING x-request-id=` + rid + ` POST /score: in .*a column was coerced$`,
		`(?m)^` + ts + ` MESSAGE x-request-id=` + rid + ` POST /score: scoring 12 bytes$`,
	} {
		waitLog(t, log, regexp.MustCompile(re))
	}

	t.Run("a status the script set is kept", func(t *testing.T) {
		status, body := post(t, base+"/teapot", "rid-2")
		if status != 418 || body["error"] != "Internal error" || body["message"] != "short and stout" {
			t.Errorf("got %d %v, want 418 with plumber's \"Internal error\" and R's message", status, body)
		}
	})
}

func TestLauncherRErrorDetailOff(t *testing.T) {
	requirePlumber(t)
	base, log := startScript(t, "throws", EnvErrorDetail+"=false", EnvDeployment+"=blue")
	status, body := post(t, base+"/score", "rid-hidden")
	if status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", status)
	}
	for _, k := range []string{"message", "call", "class"} {
		if _, ok := body[k]; ok {
			t.Errorf("with error detail off the body has %q: %v", k, body)
		}
	}
	if body["request_id"] != "rid-hidden" || body["deployment"] != "blue" || !strings.Contains(body["log"].(string), "hidden") {
		t.Errorf("body = %v, want the request id, the deployment and where to look", body)
	}
	// The log keeps R's message: that is where the operator reads it.
	waitLog(t, log, regexp.MustCompile(`ERROR x-request-id=rid-hidden POST /score: .*object 'cyl' not found`))
}

func TestLauncherKeepsScriptErrorHandler(t *testing.T) {
	requirePlumber(t)
	base, _ := startScript(t, "ownhandler", EnvErrorDetail+"=true")
	status, body := post(t, base+"/score", "rid-own")
	if status != http.StatusServiceUnavailable || !cmp.Equal(body["mine"], []any{"handled by plumber.R"}) || body["request_id"] != nil {
		t.Errorf("got %d %v, want plumber.R's own handler (503, mine)", status, body)
	}
}
