// Package drivertest is the conformance suite every driver runs: one set of
// cases, in the spirit of Litestream's RunWithReplicaClient, that pins down
// what the reconciler may rely on whatever runs the instances.
//
// A driver's test calls Run with a Harness that builds specs for a server
// following the suite's scoring contract:
//
//	GET  /live   200 when the server is up
//	GET  /ready  200 when it is ready
//	POST /score  {"env": ["NAME", …], "log": "text"}: writes text as one
//	             line to the instance log (when not empty) and answers a
//	             JSON object with each named variable of the server's
//	             environment ("" when unset)
//	GET  /child  host:port of the child process Server.Child started
//
// testdata/testserver is that server as a Go program (BuildTestServer);
// the process driver's tests also run the suite on an R plumber.R, and the
// fake driver follows the contract itself.
//
// This package is for tests only. It must not import the store, the
// registry, the gateway, the reconciler or the API server.
package drivertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

// Server says how the server behind a spec must behave.
type Server struct {
	// Env becomes InstanceSpec.Env: the user's environment_variables.
	Env map[string]string
	// ExitAfter, when positive, makes the server exit on its own about this
	// long after it starts, with ExitCode. Asked only when Harness.Exits.
	ExitAfter time.Duration
	ExitCode  int
	// IgnoreTerm makes the server ignore SIGTERM (or the driver's polite
	// stop), so only the kill after the grace period ends it. Asked only
	// when Harness.IgnoresTerm.
	IgnoreTerm bool
	// Child makes the server start a child process that also ignores
	// SIGTERM and answers HTTP on its own port, reported by GET /child.
	// Asked only when Harness.Children.
	Child bool
}

// Harness adapts the suite to one driver.
type Harness struct {
	// Spec returns a spec with ID id whose server follows the contract and
	// behaves as s says. It should set ModelDir, CodeDir and EntryScript,
	// so the suite can check that they reach the server. Required.
	Spec func(t *testing.T, id string, s Server) driver.InstanceSpec
	// Exits, IgnoresTerm and Children say which Server behaviours Spec can
	// produce; the cases that need a missing one are skipped.
	Exits, IgnoresTerm, Children bool
	// StartTimeout bounds the wait for a started server to answer. Zero: 30s.
	StartTimeout time.Duration
	// Paths says where the server sees a spec's ModelDir and CodeDir (the
	// AZUREML_MODEL_DIR and AML_APP_ROOT it must get). Nil: the host paths
	// themselves (drivers that run processes on this host); container
	// drivers return the paths they mount them at.
	Paths func(spec driver.InstanceSpec) (modelDir, codeDir string)
	// Reopen plays a restart of the server that owns d: d goes away
	// without stopping its instances (process: Close) and a new driver on
	// the same state is returned, on which the suite calls Recover. Nil
	// skips the re-adoption case.
	Reopen func(t *testing.T, d driver.Driver) driver.Driver
}

// client talks to instances without keep-alive, so no idle connection
// outlives a stopped instance or a test.
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// Run runs the conformance suite against d, which must be fresh: no
// instance started, nothing to recover.
func Run(t *testing.T, d driver.Driver, h Harness) {
	if h.StartTimeout == 0 {
		h.StartTimeout = 30 * time.Second
	}
	ctx := t.Context()
	cur := d // the driver in use; Reopen replaces it
	t.Cleanup(func() { stopAll(t, cur) })

	t.Run("RecoverFresh", func(t *testing.T) {
		got, err := d.Recover(ctx)
		if err != nil || len(got) != 0 {
			t.Errorf("Recover() on a fresh driver = %v, %v; want no instances, nil", got, err)
		}
		if list, err := d.List(ctx); err != nil || len(list) != 0 {
			t.Errorf("List() after Recover on a fresh driver = %v, %v; want none", list, err)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		if err := d.Stop(ctx, "conformance.none.none-0", time.Second); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Stop(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := d.Inspect(ctx, "conformance.none.none-0"); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Inspect(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := d.Logs(ctx, "conformance.none.none-0", driver.LogOptions{}); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Logs(unknown) = %v, want ErrNotFound", err)
		}
	})

	// One instance serves most cases, so that drivers whose servers are
	// slow to start (R) start few.
	token := newToken()
	userEnv := map[string]string{"PLUMBLINE_CONFORMANCE": "user-value", tokenVar: token}
	spec := h.Spec(t, "conformance.blue.blue-0", Server{Env: userEnv})
	spec.Template = "t1:conformance-blue"
	started, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start(%s) = %v", spec.ID, err)
	}
	waitServing(t, d, spec.ID, started.Addr, h.StartTimeout)

	t.Run("Running", func(t *testing.T) {
		if started.ID != spec.ID || started.Addr == "" || started.Template != spec.Template ||
			(started.State != driver.StateRunning && started.State != driver.StateStarting) {
			t.Errorf("Start() = %+v, want ID %s, an Addr, Template %q, State Starting or Running", started, spec.ID, spec.Template)
		}
		got, err := d.Inspect(ctx, spec.ID)
		if err != nil || got.State != driver.StateRunning || got.Addr != started.Addr || got.Template != spec.Template {
			t.Errorf("Inspect() = %+v, %v; want Running at %s with Template %q", got, err, started.Addr, spec.Template)
		}
		for _, path := range []string{"/live", "/ready"} {
			if code, body := get(t, started.Addr, path); code != http.StatusOK {
				t.Errorf("GET %s = %d %q, want 200", path, code, body)
			}
		}
	})
	t.Run("EnvContract", func(t *testing.T) {
		got := score(t, started.Addr, "", "AZUREML_MODEL_DIR", "AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT", "PLUMBLINE_CONFORMANCE")
		modelDir, codeDir := spec.ModelDir, spec.CodeDir
		if h.Paths != nil {
			modelDir, codeDir = h.Paths(spec)
		}
		want := map[string]string{
			"AZUREML_MODEL_DIR":     modelDir,
			"AML_APP_ROOT":          codeDir,
			"AZUREML_ENTRY_SCRIPT":  spec.EntryScript,
			"PLUMBLINE_CONFORMANCE": "user-value",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("server sees %s=%q, want %q", k, got[k], v)
			}
		}
	})
	t.Run("List", func(t *testing.T) {
		list, err := d.List(ctx)
		if err != nil || len(list) != 1 || list[0].ID != spec.ID || list[0].State != driver.StateRunning || list[0].Template != spec.Template {
			t.Errorf("List() = %+v, %v; want just %s, Running, Template %q", list, err, spec.ID, spec.Template)
		}
	})
	t.Run("DuplicateID", func(t *testing.T) {
		if _, err := d.Start(ctx, spec); !errors.Is(err, driver.ErrExists) {
			t.Errorf("Start(same ID again) = %v, want ErrExists", err)
		}
		if code, _ := get(t, started.Addr, "/live"); code != http.StatusOK {
			t.Errorf("after a duplicate Start, GET /live = %d, want the first instance still serving", code)
		}
	})
	t.Run("LogsTail", func(t *testing.T) {
		for _, line := range []string{"tail-line-1", "tail-line-2", "tail-line-3"} {
			score(t, started.Addr, line)
		}
		Eventually(t, 10*time.Second, func() string {
			got := readLogs(t, d, spec.ID, driver.LogOptions{Tail: 2})
			if want := "tail-line-2\ntail-line-3\n"; got != want {
				return fmt.Sprintf("Logs(Tail 2) = %q, want %q", got, want)
			}
			return ""
		})
		all := readLogs(t, d, spec.ID, driver.LogOptions{})
		if !strings.Contains(all, "tail-line-1\ntail-line-2\ntail-line-3\n") {
			t.Errorf("Logs(all) lacks the three lines in order:\n%s", all)
		}
	})
	t.Run("LogsFollow", func(t *testing.T) {
		// A line written as soon as the follow has opened is delivered.
		// Several rounds: the engine's set-up of a follow is where a line
		// can slip by, and one round seldom hits it.
		for round := range followRounds {
			fctx, cancel := context.WithCancel(ctx)
			lines := follow(t, fctx, d, spec.ID)
			line := fmt.Sprintf("follow-line-%d", round)
			score(t, started.Addr, line)
			waitLine(t, lines, line, 10*time.Second)
			cancel()
			waitEnd(t, lines, "after its ctx ended")
		}
	})
	t.Run("LogsFollowWhileWriting", func(t *testing.T) {
		// A follow opened while the server writes (a busy instance, as
		// users follow it) must deliver every line written after the tail
		// it starts with: none lost while the stream is set up, none twice.
		followWhileWriting(t, ctx, d, spec.ID, started.Addr)
	})
	t.Run("SideBySide", func(t *testing.T) {
		other := h.Spec(t, "conformance.green.green-0", Server{Env: map[string]string{
			"AZUREML_MODEL_DIR":     "/user/override",
			"PLUMBLINE_CONFORMANCE": "green",
		}})
		st, err := d.Start(ctx, other)
		if err != nil {
			t.Fatalf("Start(%s) = %v", other.ID, err)
		}
		defer stop(t, d, other.ID, 10*time.Second)
		waitServing(t, d, other.ID, st.Addr, h.StartTimeout)
		if st.Addr == started.Addr {
			t.Errorf("two instances share the address %s", st.Addr)
		}
		got := score(t, st.Addr, "", "AZUREML_MODEL_DIR", "PLUMBLINE_CONFORMANCE")
		if got["AZUREML_MODEL_DIR"] != "/user/override" || got["PLUMBLINE_CONFORMANCE"] != "green" {
			t.Errorf("second instance sees %v, want the user's AZUREML_MODEL_DIR to win over the driver's", got)
		}
		if got := score(t, started.Addr, "", "PLUMBLINE_CONFORMANCE"); got["PLUMBLINE_CONFORMANCE"] != "user-value" {
			t.Errorf("first instance now sees %v, want its own environment", got)
		}
		if list, _ := d.List(ctx); len(list) != 2 {
			t.Errorf("List() = %d instances, want 2", len(list))
		}
	})
	t.Run("Stop", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		lines := follow(t, fctx, d, spec.ID)
		begin := time.Now()
		const grace = 20 * time.Second
		if err := d.Stop(ctx, spec.ID, grace); err != nil {
			t.Fatalf("Stop() = %v", err)
		}
		if took := time.Since(begin); took > grace/2 {
			t.Errorf("Stop of a server that honours SIGTERM took %s, want well under its %s grace", took, grace)
		}
		waitEnd(t, lines, "after Stop removed the instance")
		if _, err := d.Inspect(ctx, spec.ID); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Inspect after Stop = %v, want ErrNotFound", err)
		}
		if list, _ := d.List(ctx); len(list) != 0 {
			t.Errorf("List after Stop = %+v, want none", list)
		}
		gone(t, started.Addr, token)
		if err := d.Stop(ctx, spec.ID, grace); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("second Stop = %v, want ErrNotFound", err)
		}
	})
	t.Run("ExitReportsCode", func(t *testing.T) {
		if !h.Exits {
			t.Skip("the harness cannot make its server exit on its own")
		}
		s := h.Spec(t, "conformance.crash.crash-0", Server{ExitAfter: 300 * time.Millisecond, ExitCode: 3})
		if _, err := d.Start(ctx, s); err != nil {
			t.Fatalf("Start() = %v", err)
		}
		var st driver.Status
		Eventually(t, 20*time.Second, func() string {
			st, _ = d.Inspect(ctx, s.ID)
			if st.State != driver.StateExited {
				return fmt.Sprintf("Inspect() = %+v, want Exited", st)
			}
			return ""
		})
		if st.ExitCode != 3 || st.ExitedAt.IsZero() {
			t.Errorf("Inspect() = %+v, want exit code 3 and ExitedAt", st)
		}
		if list, _ := d.List(ctx); len(list) != 1 || list[0].State != driver.StateExited {
			t.Errorf("List() = %+v, want the exited instance still listed", list)
		}
		readLogs(t, d, s.ID, driver.LogOptions{}) // still readable
		stop(t, d, s.ID, time.Second)
	})
	t.Run("StopKillsWhatIgnoresTerm", func(t *testing.T) {
		if !h.IgnoresTerm {
			t.Skip("the harness cannot make its server ignore SIGTERM")
		}
		token := newToken()
		s := h.Spec(t, "conformance.stubborn.stubborn-0", Server{Env: map[string]string{tokenVar: token}, IgnoreTerm: true, Child: h.Children})
		st, err := d.Start(ctx, s)
		if err != nil {
			t.Fatalf("Start() = %v", err)
		}
		waitServing(t, d, s.ID, st.Addr, h.StartTimeout)
		child, childSays := "", ""
		if h.Children {
			code, body := get(t, st.Addr, "/child")
			if code != http.StatusOK {
				t.Fatalf("GET /child = %d %q, want the child's address", code, body)
			}
			child = body
			if code, childSays = get(t, child, "/"); code != http.StatusOK {
				t.Fatalf("child at %s does not answer", child)
			}
		}
		const grace = 500 * time.Millisecond
		begin := time.Now()
		if err := d.Stop(ctx, s.ID, grace); err != nil {
			t.Fatalf("Stop() = %v", err)
		}
		if took := time.Since(begin); took < grace {
			t.Errorf("Stop took %s, less than the %s grace a server ignoring SIGTERM gets", took, grace)
		}
		gone(t, st.Addr, token)
		if child != "" {
			if resp, err := client.Get("http://" + child + "/"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.TrimSpace(string(b)) == childSays {
					t.Errorf("the server's child still answers at %s after Stop", child)
				}
			}
		}
	})
	t.Run("RecoverReadopts", func(t *testing.T) {
		if h.Reopen == nil {
			t.Skip("the harness cannot reopen the driver on the same state")
		}
		token := newToken()
		keep := h.Spec(t, "conformance.adopt.adopt-0", Server{Env: map[string]string{tokenVar: token}})
		keep.Template = "t1:conformance-adopt"
		st, err := cur.Start(ctx, keep)
		if err != nil {
			t.Fatalf("Start(%s) = %v", keep.ID, err)
		}
		waitServing(t, cur, keep.ID, st.Addr, h.StartTimeout)
		score(t, st.Addr, "before-restart")
		var dead driver.InstanceSpec
		if h.Exits {
			dead = h.Spec(t, "conformance.adopt.dead-0", Server{ExitAfter: 300 * time.Millisecond, ExitCode: 3})
			if _, err := cur.Start(ctx, dead); err != nil {
				t.Fatalf("Start(%s) = %v", dead.ID, err)
			}
		}

		// Whatever else runs (a case run alone leaves the shared instance)
		// must come back too.
		others := map[string]bool{}
		if list, err := cur.List(ctx); err == nil {
			for _, o := range list {
				if o.ID != keep.ID && o.ID != dead.ID && o.State == driver.StateRunning {
					others[o.ID] = true
				}
			}
		}
		cur = h.Reopen(t, cur)
		if h.Exits {
			time.Sleep(time.Second) // the dead one has exited by now
		}
		all, err := cur.Recover(ctx)
		if err != nil {
			t.Fatalf("Recover() after a restart = %v", err)
		}
		var got []driver.Status
		for _, a := range all {
			if !others[a.ID] {
				got = append(got, a)
			}
		}
		if len(all)-len(got) != len(others) {
			t.Errorf("Recover() = %+v; want %v re-adopted too", all, others)
		}
		if len(got) != 1 || got[0].ID != keep.ID || got[0].Template != keep.Template || got[0].Addr != st.Addr ||
			got[0].PID != st.PID || got[0].State != driver.StateRunning {
			t.Fatalf("Recover() = %+v; want %s, Running, at %s, pid %d, Template %q", all, keep.ID, st.Addr, st.PID, keep.Template)
		}
		if !got[0].StartedAt.Equal(st.StartedAt) && got[0].StartedAt.Sub(st.StartedAt).Abs() > time.Second {
			t.Errorf("re-adopted StartedAt = %s, want about %s", got[0].StartedAt, st.StartedAt)
		}
		if in, err := cur.Inspect(ctx, keep.ID); err != nil || in.State != driver.StateRunning || in.Template != keep.Template {
			t.Errorf("Inspect(re-adopted) = %+v, %v; want Running with its Template", in, err)
		}
		if got := score(t, st.Addr, "", tokenVar); got[tokenVar] != token {
			t.Errorf("the re-adopted instance answers %v, want the same server (token %s)", got, token)
		}
		score(t, st.Addr, "after-restart")
		Eventually(t, 10*time.Second, func() string {
			all := readLogs(t, cur, keep.ID, driver.LogOptions{})
			if !strings.Contains(all, "before-restart\n") || !strings.Contains(all, "after-restart\n") {
				return fmt.Sprintf("Logs(re-adopted) = %q, want the lines written before and after the restart", all)
			}
			return ""
		})
		if h.Exits {
			if _, err := cur.Inspect(ctx, dead.ID); !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Inspect(%s, exited before Recover) = %v, want ErrNotFound: Recover removes dead leftovers", dead.ID, err)
			}
		}
		if list, _ := cur.List(ctx); len(list) != 1+len(others) {
			t.Errorf("List() after Recover = %+v, want the re-adopted instances", list)
		}
		if err := cur.Stop(ctx, keep.ID, 10*time.Second); err != nil {
			t.Fatalf("Stop(re-adopted) = %v", err)
		}
		gone(t, st.Addr, token)
		cur = h.Reopen(t, cur)
		if again, err := cur.Recover(ctx); err != nil || len(again) != len(others) {
			t.Errorf("Recover() after the re-adopted instance was stopped = %+v, %v; want it gone", again, err)
		}
	})
}

// stopAll stops whatever a failed case left running.
func stopAll(t *testing.T, d driver.Driver) {
	list, err := d.List(context.Background())
	if err != nil {
		t.Errorf("List() in cleanup = %v", err)
	}
	for _, s := range list {
		if err := d.Stop(context.Background(), s.ID, 0); err != nil && !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Stop(%s) in cleanup = %v", s.ID, err)
		}
	}
}

func stop(t *testing.T, d driver.Driver, id string, grace time.Duration) {
	t.Helper()
	if err := d.Stop(context.Background(), id, grace); err != nil {
		t.Errorf("Stop(%s) = %v", id, err)
	}
}

// waitServing waits until GET /live answers 200, failing early (with the
// instance's log) when the instance exits.
func waitServing(t *testing.T, d driver.Driver, id, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, err := d.Inspect(t.Context(), id); err != nil || st.State == driver.StateExited {
			t.Fatalf("instance %s ended before serving: %+v, %v; log:\n%s", id, st, err, readLogs(t, d, id, driver.LogOptions{Tail: 40}))
		}
		if resp, err := client.Get("http://" + addr + "/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("instance %s did not answer GET /live at %s within %s; log:\n%s", id, addr, timeout, readLogs(t, d, id, driver.LogOptions{Tail: 40}))
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// score posts the contract's request: a line for the log and the names of
// environment variables to report.
func score(t *testing.T, addr, line string, env ...string) map[string]string {
	t.Helper()
	req := map[string]any{}
	if line != "" {
		req["log"] = line
	}
	if len(env) > 0 {
		req["env"] = env
	}
	body, _ := json.Marshal(req)
	resp, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s/score: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/score = %d %s", addr, resp.StatusCode, b)
	}
	out := map[string]string{}
	if len(env) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s/score answered %s: %v", addr, b, err)
		}
	}
	return out
}

// tokenVar is the variable through which the suite recognises an instance
// at its address: a stopped instance's port may be taken at once by another
// server (another test binary's, say), so "the connection is refused" is
// not the test; "the instance no longer answers with its token" is.
const tokenVar = "PLUMBLINE_CONFORMANCE_TOKEN"

// followRounds is how many follows LogsFollow opens.
const followRounds = 20

// newToken returns a value no other server has in its environment.
func newToken() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

// gone checks that the instance with token no longer answers at addr:
// the address refuses connections, or another server answers there.
func gone(t *testing.T, addr, token string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"env": []string{tokenVar}})
	resp, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var got map[string]string
	if json.NewDecoder(resp.Body).Decode(&got) == nil && got[tokenVar] == token {
		t.Errorf("the stopped instance still answers at %s", addr)
	}
}

func readLogs(t *testing.T, d driver.Driver, id string, opts driver.LogOptions) string {
	t.Helper()
	r, err := d.Logs(t.Context(), id, opts)
	if err != nil {
		t.Fatalf("Logs(%s, %+v) = %v", id, opts, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read logs of %s: %v", id, err)
	}
	return string(b)
}

// follow opens a following log reader and delivers its lines; the channel
// closes when the reader ends.
func follow(t *testing.T, ctx context.Context, d driver.Driver, id string) <-chan string {
	t.Helper()
	r, err := d.Logs(ctx, id, driver.LogOptions{Tail: 1, Follow: true})
	if err != nil {
		t.Fatalf("Logs(follow) = %v", err)
	}
	t.Cleanup(func() { r.Close() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// followWhileWriting has a writer score numbered lines without pause while
// a follow (Tail 1) opens, and checks that the follow delivers the last line
// written before it opened and then every later line, in order, exactly
// once.
func followWhileWriting(t *testing.T, ctx context.Context, d driver.Driver, id, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := "seq-" + newToken() + "-"
	var (
		writing  = make(chan struct{}) // closed once a few lines are written
		opened   = make(chan struct{}) // closed once the follow is open
		finished = make(chan struct{})
		end      int   // the writer's last line, once finished
		werr     error // the writer's error, once finished
	)
	go func() {
		defer close(finished)
		after := -1
		for n := 1; ; n++ {
			if werr = scoreLine(addr, prefix+strconv.Itoa(n)); werr != nil {
				return
			}
			if n == 3 {
				close(writing)
			}
			select {
			case <-opened:
				if after < 0 {
					after = n
				}
			default:
			}
			// Keep writing through the follow's set-up and a little after.
			if after >= 0 && n >= after+20 {
				end = n
				return
			}
		}
	}()
	select {
	case <-writing:
	case <-finished:
		t.Fatalf("writer: %v", werr)
	}
	lines := follow(t, ctx, d, id)
	close(opened)
	<-finished
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	// The line the follow starts with is the log's last when it opened:
	// one of the writer's, or (the engine's log lags the server's writes)
	// the line before the writer's first.
	var (
		got    []int
		before string
	)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for len(got) == 0 || got[len(got)-1] < end {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("follow ended before line %d; got %v", end, got)
			}
			n, err := strconv.Atoi(strings.TrimPrefix(line, prefix))
			if !strings.HasPrefix(line, prefix) || err != nil {
				if before != "" || len(got) > 0 {
					t.Fatalf("follow delivered %q after %q %v; want one line from the tail, then only the writer's", line, before, got)
				}
				before = line
				continue
			}
			if before != "" && len(got) == 0 && n != 1 {
				t.Fatalf("follow delivered %q then the writer's line %d: lines 1 to %d were lost", before, n, n-1)
			}
			got = append(got, n)
		case <-timer.C:
			t.Fatalf("follow did not deliver line %d within 20s; got %v", end, got)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("follow delivered lines %v: want every line once, in order, from the tail", got)
		}
	}
}

// scoreLine is score for goroutines other than the test's: it returns its
// error.
func scoreLine(addr, line string) error {
	body, _ := json.Marshal(map[string]any{"log": line})
	resp, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s/score = %d %s", addr, resp.StatusCode, b)
	}
	return nil
}

func waitLine(t *testing.T, lines <-chan string, want string, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("follow ended before %q; saw %q", want, seen)
			}
			if line == want {
				return
			}
			seen = append(seen, line)
		case <-timer.C:
			t.Fatalf("follow did not deliver %q within %s; saw %q", want, timeout, seen)
		}
	}
}

func waitEnd(t *testing.T, lines <-chan string, when string) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("a following log reader did not end %s", when)
		}
	}
}

// Eventually retries check, which returns "" on success, every 50 ms until
// it succeeds or timeout passes, then fails the test with check's last
// message. Driver tests and tests of what drives a driver share it.
func Eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
