package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Mem is a process's resident memory as /proc/<pid>/status reports it.
type Mem struct {
	RSS uint64 // VmRSS, bytes
	HWM uint64 // VmHWM, the peak RSS since the process started, bytes
}

// ReadMem reads VmRSS and VmHWM of pid.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("memory of pid %d: %w", pid, ErrGone)
	}
	var m Mem
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = parseKB(v)
		case "VmHWM":
			m.HWM = parseKB(v)
		}
	}
	return m, nil
}

func parseKB(v string) uint64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(f[0], 10, 64)
	return n * 1024
}

// Stat is what the harness needs from /proc/<pid>/stat.
type Stat struct {
	PID       int
	State     string
	PPID      int
	StartTime uint64 // clock ticks after boot
	// CPU is the user plus system time the process has used.
	CPU time.Duration
	// ChildrenCPU is that of its children it has waited for (and of
	// theirs): the CPU of a whole process tree once it has been reaped.
	ChildrenCPU time.Duration
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ReadStat parses /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, ErrGone
	}
	// The command name is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("pid %d: short stat", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	cutime, _ := strconv.ParseUint(f[13], 10, 64)
	cstime, _ := strconv.ParseUint(f[14], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return Stat{PID: pid, State: f[0], PPID: ppid, StartTime: start,
		CPU: time.Duration(utime+stime) * clockTick, ChildrenCPU: time.Duration(cutime+cstime) * clockTick}, nil
}

// CPU sums the CPU time the live processes pids have used so far.
func CPU(pids ...int) time.Duration {
	var sum time.Duration
	for _, p := range pids {
		if st, err := ReadStat(p); err == nil {
			sum += st.CPU
		}
	}
	return sum
}

// Children lists the live children of pid.
func Children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadStat(p); err == nil && st.PPID == pid && st.State != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.State != "Z"
}

// ReadPSS reads pid's proportional set size in bytes from
// /proc/<pid>/smaps_rollup: its private pages plus its share of the pages
// it shares with other processes (a forked worker's copy-on-write pages
// count once across the workers).
func ReadPSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("PSS of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "Pss" {
			return parseKB(v), nil
		}
	}
	return 0, fmt.Errorf("PSS of pid %d: no Pss line in smaps_rollup", pid)
}

// ReadSyscalls returns how many read and write system calls the process's
// threads have made so far (syscr and syscw of each /proc/<pid>/task/<tid>/io;
// reading another user's process needs root). It sums the threads because
// the process's own /proc/<pid>/io also takes in the counts of children it
// has reaped, such as a load generator it ran.
func ReadSyscalls(pid int) (reads, writes uint64, err error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/io")
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				reads += n
			case "syscw":
				writes += n
			}
		}
	}
	return reads, writes, nil
}
