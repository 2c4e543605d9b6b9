package process_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/process"
)

// fakeServer is the test binary re-executed as a plumbline server: it
// starts one instance whose server has a child, prints
// "<pid> <addr> <child addr>" and waits to be killed.
func fakeServer(stateDir, bin string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "fake server:", err)
		os.Exit(1)
	}
	d, err := process.New(process.Config{StateDir: stateDir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fail(err)
	}
	st, err := d.Start(context.Background(), driver.InstanceSpec{
		ID:      "orphan.blue.blue-0",
		Runtime: driver.RuntimeGeneric,
		Command: []string{bin, "-child"},
	})
	if err != nil {
		fail(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, child, err := httpGet(st.Addr, "/child"); err == nil && code == http.StatusOK {
			fmt.Println(st.PID, st.Addr, child)
			select {} // until SIGKILL
		}
	}
	fail(fmt.Errorf("instance did not serve"))
}

// TestRecoverAfterServerKill kills -9 a plumbline server (this test binary,
// re-executed) that runs an instance with a child process; the instance
// lives on as an orphan. A new driver's Recover on the same state dir must
// end the whole group and clean the state dir, re-adopting nothing.
func TestRecoverAfterServerKill(t *testing.T) {
	bin := drivertest.BuildTestServer(t)
	stateDir := t.TempDir()
	server := exec.Command(os.Args[0], "-test.run=^$")
	server.Env = append(os.Environ(), fakeServerEnv+"="+stateDir, testServerEnv+"="+bin)
	server.Stderr = os.Stderr
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	lineCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lineCh <- line
	}()
	var line string
	select {
	case line = <-lineCh:
	case <-time.After(60 * time.Second):
		server.Process.Kill()
		t.Fatal("fake server did not start its instance")
	}
	var pid int
	var addr, child string
	if _, err := fmt.Sscan(line, &pid, &addr, &child); err != nil {
		server.Process.Kill()
		t.Fatalf("fake server said %q: %v", line, err)
	}
	server.Process.Kill()
	server.Wait()
	t.Cleanup(func() { // should Recover fail, leave nothing behind
		if pidRuns(pid) {
			syscallKillGroup(pid)
		}
	})

	// The orphan and its child run on without their server.
	_, childSays, err := httpGet(child, "/")
	if err != nil || !stillSays(addr, "/child", child) {
		t.Fatalf("orphan at %s or its child at %s does not answer after its server died: %v", addr, child, err)
	}

	d := newDriver(t, process.Config{StateDir: stateDir})
	got, err := d.Recover(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("Recover() = %v, %v; want nothing re-adopted, nil", got, err)
	}
	if pidRuns(pid) {
		t.Errorf("orphan pid %d still runs after Recover", pid)
	}
	if stillSays(addr, "/child", child) || stillSays(child, "/", childSays) {
		t.Errorf("the orphan at %s or its child at %s still answers after Recover", addr, child)
	}
	entries, _ := os.ReadDir(filepath.Join(stateDir, "instances"))
	if len(entries) != 0 {
		t.Errorf("state dir still holds %d instance folders after Recover", len(entries))
	}
	if list, _ := d.List(t.Context()); len(list) != 0 {
		t.Errorf("List() after Recover = %+v, want none", list)
	}
}

// TestRecoverLeavesReusedPIDAlone writes records that name a live process
// with the wrong start time, or from another boot: the process must
// survive, the records must go.
func TestRecoverLeavesReusedPIDAlone(t *testing.T) {
	victim := exec.Command("sleep", "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		victim.Process.Kill()
		victim.Wait()
	})
	stateDir := t.TempDir()
	for name, rec := range map[string]map[string]any{
		"wrong-start": {"id": "wrong-start", "pid": victim.Process.Pid, "pgid": victim.Process.Pid, "start_time": 1},
		"other-boot":  {"id": "other-boot", "pid": victim.Process.Pid, "pgid": victim.Process.Pid, "start_time": 0, "boot_id": "another-boot"},
		"corrupt":     nil,
	} {
		dir := filepath.Join(stateDir, "instances", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rec)
		if rec == nil {
			b = []byte("{not json")
		}
		if err := os.WriteFile(filepath.Join(dir, "record.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := newDriver(t, process.Config{StateDir: stateDir})
	if _, err := d.Recover(t.Context()); err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	if !pidRuns(victim.Process.Pid) {
		t.Errorf("Recover killed pid %d, which its records did not truly name", victim.Process.Pid)
	}
	entries, _ := os.ReadDir(filepath.Join(stateDir, "instances"))
	if len(entries) != 0 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("Recover left %s", strings.Join(names, ", "))
	}
}

func TestStateDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := process.New(process.Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := process.New(process.Config{StateDir: dir}); err == nil {
		t.Error("a second driver on a locked state dir: got nil error, want the dir reported in use")
	}
	first.Close()
	second, err := process.New(process.Config{StateDir: dir})
	if err != nil {
		t.Fatalf("New after the first driver closed = %v", err)
	}
	second.Close()
}

func syscallKillGroup(pgid int) { syscall.Kill(-pgid, syscall.SIGKILL) }
