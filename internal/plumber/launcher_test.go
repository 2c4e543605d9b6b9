package plumber

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requirePlumber skips the test when R or the plumber package is missing,
// or with -short.
// The check costs one short Rscript run per test binary.
func requirePlumber(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not starting R")
	}
	plumberOnce.Do(func() {
		path, err := exec.LookPath("Rscript")
		if err != nil {
			plumberSkip = "Rscript is not installed (apt-get install r-base-core r-cran-plumber)"
			return
		}
		missing, err := MissingPackages(context.Background(), path, []string{"plumber"})
		switch {
		case err != nil:
			plumberSkip = "cannot ask R for plumber: " + err.Error()
		case len(missing) > 0:
			plumberSkip = "the R package plumber is not installed: " + InstallHint(missing)
		default:
			rscript = path
		}
	})
	if plumberSkip != "" {
		t.Skip(plumberSkip)
	}
	return rscript
}

var (
	plumberOnce sync.Once
	plumberSkip string // why R tests skip; "" when R and plumber are there
	rscript     string
)

// launch runs the launcher the way the process driver does: Rscript -e, the
// container contract in the environment, stdout and stderr to one log.
func launch(t *testing.T, codeDir string, port int, env ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cmd := exec.Command(requirePlumber(t), "-e", Launcher("127.0.0.1"))
	cmd.Env = append(os.Environ(),
		"AZUREML_MODEL_DIR="+abs("testdata/app"),
		"AML_APP_ROOT="+abs(codeDir),
		"AZUREML_ENTRY_SCRIPT=plumber.R",
		"PORT="+strconv.Itoa(port),
	)
	cmd.Env = append(cmd.Env, env...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, log
}

func TestLauncherServesSeedShapedScript(t *testing.T) {
	requirePlumber(t)
	port := freePort(t)
	cmd, log := launch(t, "testdata/app/src", port)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitLive(t, base+"/live", log)

	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"liveness", "GET", "/live", "", `["alive"]`},
		{"readiness", "GET", "/ready", "", `["ready"]`},
		// The seed returns jsonlite::toJSON()'s string and plumber's default
		// JSON serializer encodes it again: clients of the seed get a JSON
		// array holding one JSON string, on Azure as here.
		{"score", "POST", "/score", `{"forecast_horizon": [2]}`, `["[{\"period\":1,\"forecast\":4},{\"period\":2,\"forecast\":4}]"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			status, body := do(t, req)
			if status != http.StatusOK || body != tt.want {
				t.Errorf("%s %s = %d %s, want 200 %s", tt.method, tt.path, status, body, tt.want)
			}
		})
	}
	t.Run("docs on", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/__docs__/", nil)
		if status, _ := do(t, req); status != http.StatusOK {
			t.Errorf("GET /__docs__/ = %d, want 200 (the launcher turns docs on like start_plumber.R)", status)
		}
	})
	t.Run("bound to the given host only", func(t *testing.T) {
		if !strings.Contains(log.String(), "http://127.0.0.1:"+strconv.Itoa(port)) {
			t.Errorf("log does not show plumber on 127.0.0.1:%d:\n%s", port, log.String())
		}
	})
}

func TestLauncherReportsPlumbErrors(t *testing.T) {
	requirePlumber(t)
	cmd, log := launch(t, "testdata/broken", freePort(t))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("R kept running after a syntax error; log:\n%s", log.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("launcher on a broken plumber.R: got %v, want a non-zero exit", err)
	}
	out := log.String()
	for _, want := range []string{
		"plumbline: plumber could not load",
		"broken/plumber.R",
		"unexpected '*'", // R's own parse error text
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestLauncherQuotesHost(t *testing.T) {
	got := Launcher(`a'b\c`)
	if !strings.Contains(got, `host = 'a\'b\\c'`) {
		t.Errorf("Launcher did not quote the host as an R string:\n%s", got)
	}
}

func waitLive(t *testing.T, url string, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within 60s; log:\n%s", url, log.String())
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for the two copy goroutines exec starts.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLauncherKeepsSeedStatements compares the launcher with the seed's
// start_plumber.R, statement by statement (whitespace aside): all are kept
// but the two the Launcher doc names as changed on purpose.
func TestLauncherKeepsSeedStatements(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed/start_plumber.R")
	if err != nil {
		t.Fatal(err)
	}
	squash := func(s string) string {
		return strings.TrimSuffix(strings.Join(strings.Fields(s), ""), ";")
	}
	got := squash(Launcher("127.0.0.1"))
	changed := map[string]string{
		// plumb() runs inside tryCatch, to report its error and exit 1.
		"pr<-plumber::plumb(entry_script_path)": "pr<-tryCatch(plumber::plumb(entry_script_path),",
		// host and port come from the driver.
		"args<-list(host='0.0.0.0',port=8000)": "args<-list(host='127.0.0.1',port=as.integer(Sys.getenv('PORT')))",
	}
	for _, line := range strings.Split(string(seed), "\n") {
		want := squash(line)
		if want == "" {
			continue
		}
		if c, ok := changed[want]; ok {
			want = c
		}
		if !strings.Contains(got, want) {
			t.Errorf("Launcher lacks the seed's %q", strings.TrimSpace(line))
		}
	}
}
