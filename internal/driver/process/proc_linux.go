package process

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procInfo is what Recover and Stop need from /proc/<pid>/stat.
type procInfo struct {
	pid       int
	state     byte   // R, S, D, Z…
	pgrp      int    // process group
	startTime uint64 // field 22: clock ticks after boot; with pid, names a process uniquely
}

func (p procInfo) zombie() bool { return p.state == 'Z' || p.state == 'X' }

// readProc parses /proc/<pid>/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted after its last ')'.
func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	// rest[0] is field 3 (state), so field k is rest[k-3].
	rest := strings.Fields(string(b[i+1:]))
	if len(rest) < 20 {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(rest)+2)
	}
	pgrp, err := strconv.Atoi(rest[2])
	if err != nil {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat pgrp: %w", pid, err)
	}
	start, err := strconv.ParseUint(rest[19], 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat starttime: %w", pid, err)
	}
	return procInfo{pid: pid, state: rest[0][0], pgrp: pgrp, startTime: start}, nil
}

// groupMembers lists the processes of process group pgid, zombies included.
func groupMembers(pgid int) []procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil && p.pgrp == pgid {
			out = append(out, p)
		}
	}
	return out
}

// groupAlive reports whether any process of group pgid is still running. A
// zombie does not count: it holds no port and runs no code, and whether it
// is reaped depends on its parent (init, for orphans), not on us.
func groupAlive(pgid int) bool {
	if !groupSignalable(pgid) {
		return false
	}
	for _, p := range groupMembers(pgid) {
		if !p.zombie() {
			return true
		}
	}
	return false
}

// bootID names the current boot; a record from another boot names processes
// that are gone, whatever their PIDs now belong to.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
