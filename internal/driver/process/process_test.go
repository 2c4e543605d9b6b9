package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/process"
	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/rworker"
)

// Environment variables that turn the test binary into a fake plumbline
// server for TestRecoverAfterServerKill.
const (
	fakeServerEnv = "PLUMBLINE_TEST_FAKE_SERVER_STATE_DIR"
	testServerEnv = "PLUMBLINE_TEST_SERVER_BIN"
)

func TestMain(m *testing.M) {
	// The driver runs the lean R runtime's supervisor as its own
	// executable (Config.Self's default): here, this test binary.
	if len(os.Args) > 1 && os.Args[1] == rworker.Command {
		os.Exit(rworker.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if dir := os.Getenv(fakeServerEnv); dir != "" {
		fakeServer(dir, os.Getenv(testServerEnv))
		return
	}
	os.Exit(m.Run())
}

// newDriver returns a process driver on a fresh state dir, closed and with
// every instance stopped at the end of the test.
func newDriver(t *testing.T, cfg process.Config) *process.Driver {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		list, _ := d.List(context.Background())
		for _, s := range list {
			d.Stop(context.Background(), s.ID, 0)
		}
		d.Close()
	})
	return d
}

// goServer is the harness for the Go test server: runtime generic, the
// behaviours as flags.
func goServer(bin string) drivertest.Harness {
	return drivertest.Harness{
		Spec: func(t *testing.T, id string, s drivertest.Server) driver.InstanceSpec {
			args := []string{bin}
			if s.ExitAfter > 0 {
				args = append(args, "-exit-after="+s.ExitAfter.String(), "-exit-code="+strconv.Itoa(s.ExitCode))
			}
			if s.IgnoreTerm {
				args = append(args, "-ignore-term")
			}
			if s.Child {
				args = append(args, "-child")
			}
			return driver.InstanceSpec{
				ID:          id,
				Runtime:     driver.RuntimeGeneric,
				Command:     args,
				ModelDir:    t.TempDir(),
				CodeDir:     t.TempDir(),
				EntryScript: "server",
				Env:         s.Env,
			}
		},
		Exits:       true,
		IgnoresTerm: true,
		Children:    true,
	}
}

func TestConformance(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	cfg := process.Config{StateDir: t.TempDir()}
	h := goServer(bin)
	h.Reopen = reopen(cfg)
	drivertest.Run(t, newDriver(t, cfg), h)
}

// reopen plays a restart of the server: the old driver is closed, leaving
// its instances running, and a new one opens the same state dir.
func reopen(cfg process.Config) func(t *testing.T, old driver.Driver) driver.Driver {
	return func(t *testing.T, old driver.Driver) driver.Driver {
		if err := old.(*process.Driver).Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		return newDriver(t, cfg)
	}
}

// TestConformancePlumber runs the suite once on real R: the launcher, on
// testdata/plumber/plumber.R. It starts R twice (the shared instance and
// the side-by-side one).
func TestConformancePlumber(t *testing.T) {
	runPlumberConformance(t, nil)
}

// TestConformanceLean runs the suite on the lean R runtime: the driver
// starts `plumbline rworker` (this test binary) for the same plumber.R. The
// supervisor answers its own probe routes, so that the suite's GET /live
// and /ready reach plumber.R's routes through the workers (the supervisor's
// probes are internal/rworker's subject).
func TestConformanceLean(t *testing.T) {
	runPlumberConformance(t, &driver.RWorkers{Workers: 2, LivenessPath: rworker.OwnLivenessPath, ReadinessPath: rworker.OwnReadinessPath})
}

// runPlumberConformance runs the suite on testdata/plumber/plumber.R, on
// plumber's own server (rw nil) or the lean R runtime.
func runPlumberConformance(t *testing.T, rw *driver.RWorkers) {
	rscript := requirePlumber(t)
	code, err := filepath.Abs("testdata/plumber")
	if err != nil {
		t.Fatal(err)
	}
	cfg := process.Config{Rscript: rscript, StateDir: t.TempDir()}
	drivertest.Run(t, newDriver(t, cfg), drivertest.Harness{
		Reopen: reopen(cfg),
		Spec: func(t *testing.T, id string, s drivertest.Server) driver.InstanceSpec {
			return driver.InstanceSpec{
				ID:          id,
				Runtime:     driver.RuntimePlumber,
				ModelDir:    t.TempDir(),
				CodeDir:     code,
				EntryScript: "plumber.R",
				Env:         s.Env,
				RWorkers:    rw,
			}
		},
		StartTimeout: 60 * time.Second,
	})
}

// TestLeanFallsBackToPlumber: what only the loaded session can tell the
// lean runtime cannot serve (an exit hook registered through a variable)
// makes the supervisor replace itself with plumber's own server: same pid,
// same address, and the log says why.
func TestLeanFallsBackToPlumber(t *testing.T) {
	rscript := requirePlumber(t)
	code := t.TempDir()
	src := "#* @plumber\nfunction(pr) {\n  stage <- \"exit\"\n  plumber::pr_hook(pr, stage, function() NULL)\n}\n\n#* @get /live\nfunction() \"alive\"\n"
	if err := os.WriteFile(filepath.Join(code, "plumber.R"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, process.Config{Rscript: rscript})
	st, err := d.Start(context.Background(), driver.InstanceSpec{
		ID: "fallback", Runtime: driver.RuntimePlumber, CodeDir: code, EntryScript: "plumber.R",
		RWorkers: &driver.RWorkers{Workers: 1, LivenessPath: "/.plumbline/live", ReadinessPath: "/.plumbline/ready"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// R starts twice (the lean runtime's session, then plumber's own
	// server): allow for a loaded machine.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := client.Get("http://" + st.Addr + "/live")
		last := fmt.Sprint(err)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK && string(body) == `["alive"]` {
				break
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, body)
		}
		if time.Now().After(deadline) {
			logs, _ := d.Logs(context.Background(), "fallback", driver.LogOptions{Tail: 40})
			var text []byte
			if logs != nil {
				text, _ = io.ReadAll(logs)
				logs.Close()
			}
			t.Fatalf("plumber's own server did not answer /live within 2 minutes (last: %s); log:\n%s", last, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	now, err := d.Inspect(context.Background(), "fallback")
	if err != nil || now.State != driver.StateRunning || now.PID != st.PID {
		t.Errorf("after the fallback: %+v, %v; want the same pid %d running", now, err, st.PID)
	}
	logs, err := d.Logs(context.Background(), "fallback", driver.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	text, _ := io.ReadAll(logs)
	if !strings.Contains(string(text), "exit hook") || !strings.Contains(string(text), "plumber's own server instead") {
		t.Errorf("the log does not say why:\n%s", text)
	}
}

var (
	plumberOnce sync.Once
	plumberSkip string // why R tests skip; "" when R and plumber are there
	rscriptPath string
)

// requirePlumber skips the test with -short, or when Rscript or the
// plumber package is missing (asking R once per test binary).
func requirePlumber(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not starting R")
	}
	plumberOnce.Do(func() {
		path, err := exec.LookPath("Rscript")
		if err != nil {
			plumberSkip = "Rscript is not installed (Debian: apt-get install r-base-core r-cran-plumber)"
			return
		}
		missing, err := plumber.MissingPackages(context.Background(), path, []string{"plumber"})
		switch {
		case err != nil:
			plumberSkip = "cannot ask R whether plumber is installed: " + err.Error()
		case len(missing) > 0:
			plumberSkip = "the R package plumber is not installed: " + plumber.InstallHint(missing)
		default:
			rscriptPath = path
		}
	})
	if plumberSkip != "" {
		t.Skip(plumberSkip)
	}
	return rscriptPath
}

// start starts spec and waits until GET /live answers.
func start(t *testing.T, d *process.Driver, spec driver.InstanceSpec) driver.Status {
	t.Helper()
	st, err := d.Start(t.Context(), spec)
	if err != nil {
		t.Fatalf("Start(%s) = %v", spec.ID, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := httpGet(st.Addr, "/live"); err == nil && code == http.StatusOK {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer at %s; log:\n%s", spec.ID, st.Addr, logs(t, d, spec.ID, driver.LogOptions{}))
	return st
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(addr, path string) (int, string, error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// envOf asks the Go test server for the values of names.
func envOf(t *testing.T, addr string, names ...string) map[string]string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"env": names})
	resp, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func logs(t *testing.T, d driver.Driver, id string, opts driver.LogOptions) string {
	t.Helper()
	r, err := d.Logs(t.Context(), id, opts)
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// stillSays reports whether GET addr+path still answers body. A stopped
// server's port may be taken at once by another (another test binary's),
// so tests recognise a server by what it says, not by its port.
func stillSays(addr, path, body string) bool {
	code, got, err := httpGet(addr, path)
	return err == nil && code == http.StatusOK && got == body
}

// pidRuns reports whether pid names a running (not zombie) process.
func pidRuns(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	state := strings.Fields(rest)[0]
	return state != "Z" && state != "X"
}

func waitExited(t *testing.T, d *process.Driver, id string) driver.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := d.Inspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == driver.StateExited {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not exit", id)
	return driver.Status{}
}

// scoreLog asks the Go test server to write line to its log.
func scoreLog(t *testing.T, addr, line string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"log": line})
	resp, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
