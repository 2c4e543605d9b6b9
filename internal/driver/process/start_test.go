package process_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/process"
)

// TestStartErrorsAreTerminal: what the user must fix is a
// *driver.StartError, and a failed Start leaves nothing behind.
func TestStartErrorsAreTerminal(t *testing.T) {
	code := t.TempDir()
	notExec := filepath.Join(code, "server.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(code, "plumber.R")
	if err := os.WriteFile(aFile, []byte("#* @get /live\nfunction() 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rscript string
		spec    driver.InstanceSpec
	}{
		{"image runtime", "", driver.InstanceSpec{Runtime: driver.RuntimeImage, Image: "rstudio/plumber"}},
		{"unknown runtime", "", driver.InstanceSpec{Runtime: "wasm"}},
		{"generic without command", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric}},
		{"missing absolute executable", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, Command: []string{"/nonexistent/server"}}},
		{"executable not on PATH", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, Command: []string{"plumbline-no-such-server"}}},
		{"relative file without exec bit", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, CodeDir: code, Command: []string{"./server.sh"}}},
		{"directory as executable", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, Command: []string{code + "/"}}},
		{"missing code dir", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, CodeDir: filepath.Join(code, "nope"), Command: []string{"true"}}},
		{"code dir is a file", "", driver.InstanceSpec{Runtime: driver.RuntimeGeneric, CodeDir: aFile, Command: []string{"true"}}},
		{"plumber without code dir", "", driver.InstanceSpec{Runtime: driver.RuntimePlumber, EntryScript: "plumber.R"}},
		{"plumber without scoring script", "", driver.InstanceSpec{Runtime: driver.RuntimePlumber, CodeDir: code}},
		{"plumber script missing", "", driver.InstanceSpec{Runtime: driver.RuntimePlumber, CodeDir: code, EntryScript: "score.R"}},
		{"plumber without R", "/nonexistent/Rscript", driver.InstanceSpec{Runtime: driver.RuntimePlumber, CodeDir: code, EntryScript: "plumber.R"}},
		{"ID that is not a folder name", "", driver.InstanceSpec{ID: "../escape", Runtime: driver.RuntimeGeneric, Command: []string{"true"}}},
	}
	stateDir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, process.Config{StateDir: stateDir, Rscript: tt.rscript})
			spec := tt.spec
			if spec.ID == "" {
				spec.ID = "bad.blue.blue-0"
			}
			_, err := d.Start(t.Context(), spec)
			var se *driver.StartError
			if !errors.As(err, &se) {
				t.Fatalf("Start() = %v, want a *driver.StartError", err)
			}
			if se.ID != spec.ID || se.Reason == "" {
				t.Errorf("StartError = %+v, want ID %s and a reason", se, spec.ID)
			}
			if list, _ := d.List(t.Context()); len(list) != 0 {
				t.Errorf("List() after a failed Start = %+v, want none", list)
			}
			if _, err := os.Stat(filepath.Join(stateDir, "instances", "bad.blue.blue-0")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed Start left its folder: %v", err)
			}
			if _, err := d.Start(t.Context(), spec); errors.Is(err, driver.ErrExists) {
				t.Errorf("a failed Start kept the ID reserved: %v", err)
			}
		})
	}
	t.Run("image message", func(t *testing.T) {
		d := newDriver(t, process.Config{StateDir: t.TempDir()})
		_, err := d.Start(t.Context(), driver.InstanceSpec{ID: "i.b.b-0", Runtime: driver.RuntimeImage})
		if err == nil || !strings.Contains(err.Error(), "the process driver cannot run container images") {
			t.Errorf("Start(image) = %v, want it to say the process driver cannot run images", err)
		}
	})
}

// TestEnvironment checks what reaches the server beyond the conformance
// contract: PORT, the basics, PassEnv, and none of plumbline's secrets.
func TestEnvironment(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	t.Setenv("PLUMBLINE_TEST_SECRET", "s3cret")
	t.Setenv("PLUMBLINE_TEST_PASSED", "passed")
	t.Setenv("LC_PLUMBLINE_TEST", "lc")
	d := newDriver(t, process.Config{PassEnv: []string{"PLUMBLINE_TEST_PASSED"}})
	st := start(t, d, driver.InstanceSpec{ID: "env.blue.blue-0", Runtime: driver.RuntimeGeneric, Command: []string{bin}})
	got := envOf(t, st.Addr, "PORT", "PATH", "HOME", "LC_PLUMBLINE_TEST", "PLUMBLINE_TEST_PASSED", "PLUMBLINE_TEST_SECRET",
		"AZUREML_MODEL_DIR", "AML_APP_ROOT")
	want := map[string]string{
		"PORT":                  st.Addr[strings.LastIndexByte(st.Addr, ':')+1:],
		"PATH":                  os.Getenv("PATH"),
		"HOME":                  os.Getenv("HOME"),
		"LC_PLUMBLINE_TEST":     "lc",
		"PLUMBLINE_TEST_PASSED": "passed",
		"PLUMBLINE_TEST_SECRET": "", // plumbline's own environment stays behind
		"AZUREML_MODEL_DIR":     "", // no model: not set
		"AML_APP_ROOT":          "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("server sees %s=%q, want %q", k, got[k], v)
		}
	}
}

// TestPlaceholders: {port}, {model_dir} and {code_dir} in a generic
// command; the working directory is the code dir.
func TestPlaceholders(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	model, code := t.TempDir(), t.TempDir()
	d := newDriver(t, process.Config{})
	st := start(t, d, driver.InstanceSpec{
		ID: "ph.blue.blue-0", Runtime: driver.RuntimeGeneric, ModelDir: model, CodeDir: code,
		Command: []string{"/bin/sh", "-c", `echo "model={model_dir} code={code_dir} port={port} cwd=$(pwd)"; exec "$0" -port={port}`, bin},
	})
	port := st.Addr[strings.LastIndexByte(st.Addr, ':')+1:]
	want := "model=" + model + " code=" + code + " port=" + port + " cwd=" + code
	if got := logs(t, d, st.ID, driver.LogOptions{}); !strings.Contains(got, want) {
		t.Errorf("log = %q, want a line %q", got, want)
	}
}

// TestExitBySignal: an instance killed from outside is Exited with code -1
// and the signal named.
func TestExitBySignal(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	d := newDriver(t, process.Config{})
	st := start(t, d, driver.InstanceSpec{ID: "sig.blue.blue-0", Runtime: driver.RuntimeGeneric, Command: []string{bin}})
	p, err := os.FindProcess(st.PID)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	got := waitExited(t, d, st.ID)
	if got.ExitCode != -1 || !strings.Contains(got.Message, "killed") {
		t.Errorf("Inspect() = %+v, want exit code -1 and a message naming the signal", got)
	}
}

// TestPortClashIsReported simulates the race allocPort documents: another
// program takes the instance's port before the server binds it. The
// instance exits (a restart would get a new port) and says why.
func TestPortClashIsReported(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	d := newDriver(t, process.Config{})
	st, err := d.Start(t.Context(), driver.InstanceSpec{
		ID: "clash.blue.blue-0", Runtime: driver.RuntimeGeneric,
		Command: []string{"/bin/sh", "-c", `sleep 0.5; exec "$0"`, bin},
	})
	if err != nil {
		t.Fatal(err)
	}
	thief, err := listen(st.Addr)
	if err != nil {
		t.Fatalf("take the instance's port: %v", err)
	}
	defer thief.Close()
	got := waitExited(t, d, st.ID)
	if got.ExitCode == 0 || !strings.Contains(got.Message, "port "+strconv.Itoa(port(st.Addr))+" is now held by another process") {
		t.Errorf("Inspect() = %+v, want a non-zero exit and a message about the taken port", got)
	}
}

// TestStopReachesChildrenOfExitedLeader: the server exits, its child lives
// on in the group; Stop still ends the child.
func TestStopReachesChildrenOfExitedLeader(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	d := newDriver(t, process.Config{})
	st := start(t, d, driver.InstanceSpec{ID: "lead.blue.blue-0", Runtime: driver.RuntimeGeneric,
		Command: []string{bin, "-child", "-exit-after=500ms", "-exit-code=4"}})
	_, child, err := httpGet(st.Addr, "/child")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitExited(t, d, st.ID); got.ExitCode != 4 {
		t.Errorf("leader exit code = %d, want 4", got.ExitCode)
	}
	_, childSays, err := httpGet(child, "/")
	if err != nil {
		t.Fatalf("child should outlive its leader until Stop: %v", err)
	}
	if err := d.Stop(t.Context(), st.ID, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if stillSays(child, "/", childSays) {
		t.Errorf("child at %s still answers after Stop", child)
	}
}

// TestStopHonoursContext: a server that ignores SIGTERM with a long grace
// is killed as soon as Stop's ctx ends.
func TestStopHonoursContext(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	d := newDriver(t, process.Config{})
	st := start(t, d, driver.InstanceSpec{ID: "ctx.blue.blue-0", Runtime: driver.RuntimeGeneric, Command: []string{bin, "-ignore-term"}})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := d.Stop(ctx, st.ID, time.Hour); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if took := time.Since(begin); took > time.Minute {
		t.Errorf("Stop took %s, want it to end soon after ctx", took)
	}
	if pidRuns(st.PID) {
		t.Errorf("pid %d still runs after Stop", st.PID)
	}
}

// TestLogRotation runs a real server with a tiny log cap: the live file is
// rotated into .1 and .2, no more files are kept, and Logs still returns
// the newest lines in order.
func TestLogRotation(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	stateDir := t.TempDir()
	d := newDriver(t, process.Config{StateDir: stateDir, LogMaxBytes: 300, LogFiles: 2, LogCheckInterval: 5 * time.Millisecond})
	st := start(t, d, driver.InstanceSpec{ID: "rot.blue.blue-0", Runtime: driver.RuntimeGeneric, Command: []string{bin}})
	for i := range 100 {
		scoreLog(t, st.Addr, fmt.Sprintf("rotation-line-%03d", i))
		if i%10 == 9 {
			time.Sleep(15 * time.Millisecond) // let the loop rotate
		}
	}
	time.Sleep(50 * time.Millisecond)
	dir := filepath.Join(stateDir, "instances", st.ID)
	for _, name := range []string{"output.log", "output.log.1", "output.log.2"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "output.log.3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output.log.3 exists (%v), want only 2 rotated files kept", err)
	}
	got := strings.Split(strings.TrimSpace(logs(t, d, st.ID, driver.LogOptions{Tail: 3})), "\n")
	want := []string{"rotation-line-097", "rotation-line-098", "rotation-line-099"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Logs(Tail 3) = %q, want %q", got, want)
	}
	all := logs(t, d, st.ID, driver.LogOptions{})
	last := -1
	for _, line := range strings.Split(all, "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "rotation-line-%d", &n); err == nil {
			if n <= last {
				t.Errorf("Logs() out of order: %d after %d", n, last)
			}
			last = n
		}
	}
	if last != 99 {
		t.Errorf("Logs() ends at line %d, want 99", last)
	}
}
