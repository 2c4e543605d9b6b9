//go:build unix && !linux

package process

import "syscall"

// procInfo is what Recover and Stop need about a process. Without /proc
// only the process group is known.
type procInfo struct {
	pid       int
	state     byte
	pgrp      int
	startTime uint64 // always 0: unknown
}

func (p procInfo) zombie() bool { return false }

// readProc reports pid's process group; the start time is unknown, so PID
// reuse cannot be detected.
func readProc(pid int) (procInfo, error) {
	pgrp, err := syscall.Getpgid(pid)
	if err != nil {
		return procInfo{}, err
	}
	return procInfo{pid: pid, pgrp: pgrp}, nil
}

// groupMembers cannot list a group without /proc.
func groupMembers(pgid int) []procInfo { return nil }

// groupAlive reports whether the group can still be signalled (zombies
// included).
func groupAlive(pgid int) bool { return groupSignalable(pgid) }

func bootID() string { return "" }
