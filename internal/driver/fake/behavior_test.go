package fake_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/fake"
)

func spec(id string) driver.InstanceSpec {
	parts := strings.SplitN(id, ".", 3)
	return driver.InstanceSpec{ID: id, Endpoint: parts[0], Deployment: parts[1], Instance: parts[2], Runtime: driver.RuntimeGeneric}
}

func get(t *testing.T, c *http.Client, addr, path string) int {
	t.Helper()
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStartError(t *testing.T) {
	d := fake.New(fake.Options{})
	t.Cleanup(d.Close)
	d.SetBehavior("iris.blue", fake.Behavior{StartErr: &driver.StartError{ID: "iris.blue.blue-0", Reason: "no such file"}})
	for range 2 { // a failed Start does not keep the ID
		_, err := d.Start(t.Context(), spec("iris.blue.blue-0"))
		var se *driver.StartError
		if !errors.As(err, &se) {
			t.Fatalf("Start() = %v, want the configured *driver.StartError", err)
		}
	}
	if list, _ := d.List(t.Context()); len(list) != 0 {
		t.Errorf("List() = %+v, want none", list)
	}
}

func TestBehaviorPrecedence(t *testing.T) {
	d := fake.New(fake.Options{})
	t.Cleanup(d.Close)
	d.SetBehavior("", fake.Behavior{NotReady: true})
	d.SetBehavior("iris.blue", fake.Behavior{})
	d.SetBehavior("iris.blue.blue-1", fake.Behavior{NotReady: true})
	want := map[string]int{"iris.blue.blue-0": 200, "iris.blue.blue-1": 503, "iris.green.green-0": 503}
	got := map[string]int{}
	for id := range want {
		st, err := d.Start(t.Context(), spec(id))
		if err != nil {
			t.Fatal(err)
		}
		got[id] = get(t, http.DefaultClient, st.Addr, "/ready")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /ready per instance (-want +got):\n%s", diff)
	}
}

func TestStartDelayHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := fake.New(fake.Options{NoListen: true})
		d.SetBehavior("", fake.Behavior{StartDelay: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := d.Start(ctx, spec("iris.blue.blue-0")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Start() = %v, want the ctx deadline", err)
		}
		d.SetBehavior("", fake.Behavior{StartDelay: time.Minute})
		begin := time.Now()
		if _, err := d.Start(t.Context(), spec("iris.blue.blue-0")); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took != time.Minute {
			t.Errorf("Start took %s of bubble time, want exactly the 1m delay", took)
		}
	})
}

// TestInMemoryLifecycle drives probes and a crash in a synctest bubble:
// no sockets, fake time, the Transport reaching instances in memory.
func TestInMemoryLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := fake.New(fake.Options{NoListen: true})
		d.SetBehavior("iris.blue", fake.Behavior{NotReady: true, CrashAfter: 30 * time.Second, ExitCode: 2})
		st, err := d.Start(t.Context(), spec("iris.blue.blue-0"))
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: d.Transport()}
		if code := get(t, c, st.Addr, "/ready"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /ready before SetReady = %d, want 503", code)
		}
		d.SetReady(st.ID, true)
		if code := get(t, c, st.Addr, "/ready"); code != http.StatusOK {
			t.Errorf("GET /ready after SetReady = %d, want 200", code)
		}
		d.SetLive(st.ID, false)
		if live, ready := get(t, c, st.Addr, "/live"), get(t, c, st.Addr, "/ready"); live != 503 || ready != 503 {
			t.Errorf("not live: GET /live, /ready = %d, %d; want 503, 503", live, ready)
		}
		d.SetLive(st.ID, true)

		time.Sleep(29 * time.Second)
		if got, _ := d.Inspect(t.Context(), st.ID); got.State != driver.StateRunning {
			t.Errorf("Inspect() at 29s = %+v, want Running", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got, _ := d.Inspect(t.Context(), st.ID)
		if got.State != driver.StateExited || got.ExitCode != 2 {
			t.Errorf("Inspect() at 30s = %+v, want Exited with code 2", got)
		}
		_, err = c.Get("http://" + st.Addr + "/live")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("GET after the crash = %v, want connection refused", err)
		}
		if err := d.Stop(t.Context(), st.ID, time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCrashClosesTheSocket(t *testing.T) {
	d := fake.New(fake.Options{})
	t.Cleanup(d.Close)
	s := spec("iris.blue.blue-0")
	s.Env = map[string]string{"FAKE_TEST_TOKEN": strconv.FormatInt(time.Now().UnixNano(), 36)}
	st, err := d.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if got := token(st.Addr); got != s.Env["FAKE_TEST_TOKEN"] {
		t.Fatalf("instance answers with token %q, want %q", got, s.Env["FAKE_TEST_TOKEN"])
	}
	if err := d.Crash(st.ID, 137); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Inspect(t.Context(), st.ID); got.State != driver.StateExited || got.ExitCode != 137 {
		t.Errorf("Inspect() after Crash = %+v, want Exited 137", got)
	}
	// Refused, or another server that took the freed port: not ours.
	if got := token(st.Addr); got == s.Env["FAKE_TEST_TOKEN"] {
		t.Errorf("%s still serves the crashed instance", st.Addr)
	}
}

// token asks the echo scorer at addr for FAKE_TEST_TOKEN; "" on any error.
func token(addr string) string {
	resp, err := http.Post("http://"+addr+"/score", "application/json", strings.NewReader(`{"env": ["FAKE_TEST_TOKEN"]}`))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var got map[string]string
	json.NewDecoder(resp.Body).Decode(&got)
	return got["FAKE_TEST_TOKEN"]
}

func TestCustomRoutes(t *testing.T) {
	d := fake.New(fake.Options{})
	t.Cleanup(d.Close)
	d.SetBehavior("", fake.Behavior{
		LivenessPath: "/healthz", ReadinessPath: "/healthz/ready", ScoringPath: "/predict",
		Score: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "42") }),
	})
	st, err := d.Start(t.Context(), spec("iris.blue.blue-0"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": 200, "/healthz/ready": 200, "/live": 404} {
		if got := get(t, http.DefaultClient, st.Addr, path); got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
	resp, err := http.Post("http://"+st.Addr+"/predict", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "42" {
		t.Errorf("POST /predict = %q, want the custom scorer's 42", b)
	}
}

func TestCallsAndLogs(t *testing.T) {
	d := fake.New(fake.Options{NoListen: true})
	st, err := d.Start(t.Context(), spec("iris.blue.blue-0"))
	if err != nil {
		t.Fatal(err)
	}
	d.AppendLog(st.ID, "one")
	d.AppendLog(st.ID, "two")
	r, err := d.Logs(t.Context(), st.ID, driver.LogOptions{Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "one\ntwo\n" {
		t.Errorf("Logs(Tail 2) = %q, want %q", b, "one\ntwo\n")
	}
	d.Stop(t.Context(), st.ID, 0)
	d.Stop(t.Context(), st.ID, 0)
	want := []fake.Call{{Op: "start", ID: st.ID}, {Op: "stop", ID: st.ID}, {Op: "stop", ID: st.ID}}
	if diff := cmp.Diff(want, d.Calls(), cmpopts.IgnoreFields(fake.Call{}, "Spec")); diff != "" {
		t.Errorf("Calls() (-want +got):\n%s", diff)
	}
}

// TestFollowEndsWhenCtxEnds, many times over (see the process driver's
// twin): a follower must end when its ctx does.
func TestFollowEndsWhenCtxEnds(t *testing.T) {
	d := fake.New(fake.Options{NoListen: true})
	st, err := d.Start(t.Context(), spec("iris.blue.blue-0"))
	if err != nil {
		t.Fatal(err)
	}
	d.AppendLog(st.ID, "line")
	for range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		r, err := d.Logs(ctx, st.ID, driver.LogOptions{Tail: 1, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the follower to send what exists, so that it sits in its
		// wait loop when ctx ends.
		if _, err := io.ReadFull(r, make([]byte, len("line\n"))); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, r)
			close(done)
		}()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a following reader did not end after its ctx ended")
		}
		r.Close()
	}
}
