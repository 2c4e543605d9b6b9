package proc

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stop must take the whole process group down, children included, and
// StopAll must reach every process started.
func TestStopKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	g := NewGroup(dir)
	// The shell ignores SIGTERM and starts a child that prints its pid.
	p, err := g.Start("sh", exec.Command("sh", "-c", `trap "" TERM; sleep 60 & echo $!; wait`), Options{Grace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && child == 0; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(p.LogPath)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if child == 0 {
		t.Fatal("the shell did not print its child's pid")
	}
	g.StopAll()
	select {
	case <-p.Exited():
	default:
		t.Fatal("the process still runs after StopAll")
	}
	time.Sleep(50 * time.Millisecond)
	if Alive(child) {
		_ = syscall.Kill(child, syscall.SIGKILL)
		t.Errorf("the child (pid %d) outlived its process group's Stop", child)
	}
}

func TestReadMemAndStat(t *testing.T) {
	m, err := ReadMem(os.Getpid())
	if err != nil || m.RSS == 0 || m.HWM < m.RSS {
		t.Errorf("ReadMem(self) = %+v, %v; want RSS > 0 and HWM ≥ RSS", m, err)
	}
	st, err := ReadStat(os.Getpid())
	if err != nil || st.PPID != os.Getppid() || st.StartTime == 0 {
		t.Errorf("ReadStat(self) = %+v, %v; want ppid %d", st, err, os.Getppid())
	}
	if _, err := ReadMem(1 << 30); err == nil {
		t.Error("ReadMem of a pid that cannot exist: no error")
	}
}

func TestReadPSS(t *testing.T) {
	pss, err := ReadPSS(os.Getpid())
	m, _ := ReadMem(os.Getpid())
	if err != nil || pss == 0 || pss > m.RSS+(1<<20) {
		t.Errorf("ReadPSS(self) = %d, %v; want 0 < PSS ≤ RSS (%d)", pss, err, m.RSS)
	}
	if _, err := ReadPSS(1 << 30); err == nil {
		t.Error("ReadPSS of a pid that cannot exist: no error")
	}
}
