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
		ID:       "orphan.blue.blue-0",
		Runtime:  driver.RuntimeGeneric,
		Command:  []string{bin, "-child"},
		Template: "t1:orphan",
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

// orphanAfterServerKill runs a plumbline server (this test binary,
// re-executed) that starts an instance whose server has a child process,
// kills it with -9, and returns the orphan's pid, address and child
// address, and what the child says. The orphan lives on without its server.
func orphanAfterServerKill(t *testing.T, stateDir string) (pid int, addr, child, childSays string) {
	t.Helper()
	bin := drivertest.BuildTestServer(t)
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
	if _, err := fmt.Sscan(line, &pid, &addr, &child); err != nil {
		server.Process.Kill()
		t.Fatalf("fake server said %q: %v", line, err)
	}
	server.Process.Kill()
	server.Wait()
	t.Cleanup(func() { // whatever happens, leave nothing behind
		syscallKillGroup(pid)
	})
	_, childSays, err = httpGet(child, "/")
	if err != nil || !stillSays(addr, "/child", child) {
		t.Fatalf("orphan at %s or its child at %s does not answer after its server died: %v", addr, child, err)
	}
	return pid, addr, child, childSays
}

// TestRecoverReadoptsAfterServerKill: after kill -9 of the server, a new
// driver's Recover re-adopts the instance that still runs (same pid, same
// address, same template, its logs), and Stop ends its whole group.
func TestRecoverReadoptsAfterServerKill(t *testing.T) {
	stateDir := t.TempDir()
	pid, addr, child, childSays := orphanAfterServerKill(t, stateDir)

	d := newDriver(t, process.Config{StateDir: stateDir})
	got, err := d.Recover(t.Context())
	if err != nil || len(got) != 1 {
		t.Fatalf("Recover() = %+v, %v; want the orphan re-adopted", got, err)
	}
	want := driver.Status{ID: "orphan.blue.blue-0", State: driver.StateRunning, Addr: addr, PID: pid, Template: "t1:orphan"}
	if g := got[0]; g.ID != want.ID || g.State != want.State || g.Addr != want.Addr || g.PID != want.PID || g.Template != want.Template || g.StartedAt.IsZero() {
		t.Errorf("Recover() = %+v, want %+v with its StartedAt", g, want)
	}
	if !stillSays(addr, "/child", child) {
		t.Errorf("the re-adopted instance at %s no longer answers", addr)
	}
	if list, _ := d.List(t.Context()); len(list) != 1 || list[0].ID != want.ID {
		t.Errorf("List() after Recover = %+v, want the re-adopted instance", list)
	}
	if logs := readAll(t, d, want.ID); !strings.Contains(logs, "listening") {
		t.Errorf("Logs(re-adopted) = %q, want the server's output from before the restart", logs)
	}
	if err := d.Stop(t.Context(), want.ID, 500*time.Millisecond); err != nil {
		t.Fatalf("Stop(re-adopted) = %v", err)
	}
	if pidRuns(pid) {
		t.Errorf("re-adopted pid %d still runs after Stop", pid)
	}
	if stillSays(child, "/", childSays) {
		t.Errorf("the re-adopted instance's child at %s still answers after Stop", child)
	}
	entries, _ := os.ReadDir(filepath.Join(stateDir, "instances"))
	if len(entries) != 0 {
		t.Errorf("state dir still holds %d instance folders after Stop", len(entries))
	}
}

// TestRecoverReportsExitOfReadopted: a re-adopted instance that dies is
// seen as Exited (code unknown), within a poll or two.
func TestRecoverReportsExitOfReadopted(t *testing.T) {
	stateDir := t.TempDir()
	pid, _, _, _ := orphanAfterServerKill(t, stateDir)
	d := newDriver(t, process.Config{StateDir: stateDir})
	if got, err := d.Recover(t.Context()); err != nil || len(got) != 1 {
		t.Fatalf("Recover() = %+v, %v; want the orphan re-adopted", got, err)
	}
	syscallKillGroup(pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.Inspect(t.Context(), "orphan.blue.blue-0")
		if err == nil && st.State == driver.StateExited && st.ExitCode == -1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect() = %+v, %v; want Exited with code -1 after its group was killed", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecoverEndsGroupWhoseLeaderDied: the recorded leader is gone but its
// child (same process group) runs on; Recover cannot re-adopt a server
// without its leader, so it ends the group and cleans the state dir.
func TestRecoverEndsGroupWhoseLeaderDied(t *testing.T) {
	stateDir := t.TempDir()
	pid, _, child, childSays := orphanAfterServerKill(t, stateDir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); pidRuns(pid) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !stillSays(child, "/", childSays) {
		t.Fatalf("the child at %s died with its leader; the case needs it alive", child)
	}
	d := newDriver(t, process.Config{StateDir: stateDir})
	got, err := d.Recover(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("Recover() = %+v, %v; want nothing re-adopted", got, err)
	}
	if stillSays(child, "/", childSays) {
		t.Errorf("the leaderless child at %s still answers after Recover", child)
	}
	entries, _ := os.ReadDir(filepath.Join(stateDir, "instances"))
	if len(entries) != 0 {
		t.Errorf("state dir still holds %d instance folders after Recover", len(entries))
	}
}

func readAll(t *testing.T, d driver.Driver, id string) string {
	t.Helper()
	rc, err := d.Logs(t.Context(), id, driver.LogOptions{})
	if err != nil {
		t.Fatalf("Logs(%s) = %v", id, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
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
