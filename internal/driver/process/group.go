package process

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// groupPoll is how often a stopping group is looked at.
const groupPoll = 20 * time.Millisecond

// killWait bounds the wait for a SIGKILLed group to vanish. SIGKILL cannot
// be caught, so only a process stuck in the kernel (D state, e.g. on a dead
// NFS mount) outlives it.
const killWait = 10 * time.Second

// groupSignalable reports whether signal 0 reaches any process of group
// pgid, zombies included.
func groupSignalable(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// endGroup ends process group pgid: SIGTERM to every member, up to grace
// for them to exit, then SIGKILL to whoever is left. It returns once no
// member runs and, when reaped is not nil, once the group leader has been
// reaped (reaped is closed). When ctx ends during the grace period the group
// is killed at once; endGroup still waits for it to vanish, up to killWait.
func endGroup(ctx context.Context, pgid int, grace time.Duration, reaped <-chan struct{}) error {
	if pgid <= 1 {
		// kill(-0) and kill(-1) would signal plumbline's own group or every process.
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	gone := func() bool {
		if groupAlive(pgid) {
			return false
		}
		if reaped == nil {
			return true
		}
		select {
		case <-reaped:
			return true
		default:
			return false
		}
	}
	if gone() {
		return nil
	}
	// ESRCH here means the group ended since gone(): nothing left to do.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGone(ctx, gone, grace) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGone(context.Background(), gone, killWait) {
		return nil
	}
	return fmt.Errorf("process group %d still runs %s after SIGKILL", pgid, killWait)
}

// waitGone polls gone until it is true (true), or d passes or ctx ends
// (false).
func waitGone(ctx context.Context, gone func() bool, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(groupPoll)
	defer tick.Stop()
	for {
		if gone() {
			return true
		}
		select {
		case <-ctx.Done():
			return gone()
		case <-timer.C:
			return gone()
		case <-tick.C:
		}
	}
}
