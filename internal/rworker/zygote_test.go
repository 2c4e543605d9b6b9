package rworker

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestExitedAfterLastMessage: the session's exited channel closes only
// once every line R wrote before it exited has been dispatched. The R
// session says "unsupported <reason>" and quits with status 0; a
// supervisor woken by exited before the reason was read took the quit for
// a failure to load plumber.R, and the instance never fell back to
// plumber's own server (seen under load).
//
// A stand-in for Rscript writes a "forked" line, whose dispatch waits for
// the session's lock, then the reason, then exits. The test holds the lock
// past R's exit, so the reason is still unread in the pipe when R is gone.
func TestExitedAfterLastMessage(t *testing.T) {
	dir := t.TempDir()
	rscript := filepath.Join(dir, "Rscript")
	script := "#!/bin/sh\nprintf 'forked w1 4242\\nunsupported a reason from R\\n' > \"$PLUMBLINE_RLEAN_DIR/zygote.out\"\nexit 0\n"
	if err := os.WriteFile(rscript, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: filepath.Join(dir, "run"), Rscript: rscript}
	if err := os.Mkdir(cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := startSession(cfg, "127.0.0.1", "1", nil, "", io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(time.Second)
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		// Until Wait has reaped R (a zombie still has its /proc entry).
		for {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	select {
	case <-reaped:
	case <-time.After(time.Minute):
		s.mu.Unlock()
		t.Fatal("the stand-in for R did not exit within a minute")
	}
	select {
	case <-s.exited:
		s.mu.Unlock()
		t.Fatal("exited closed while R's last lines were unread")
	case <-time.After(100 * time.Millisecond):
	}
	s.mu.Unlock()
	<-s.exited
	select {
	case reason := <-s.unsupported:
		if reason != "a reason from R" {
			t.Errorf("unsupported = %q, want R's reason", reason)
		}
	default:
		t.Fatal("exited closed before R's unsupported line was dispatched")
	}
	if got := s.exitReason(); got != "exited with code 0" {
		t.Errorf("exitReason = %q", got)
	}
}
