// Package sysinfo describes the machine a benchmark ran on (CPU model,
// cores, memory, kernel) and how busy it was: the share of CPU time other
// processes used while the harness sat idle, and the load average.
//
// It imports nothing from plumbline.
package sysinfo

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine is what the report says about the box.
type Machine struct {
	CPUModel string
	Cores    int // logical CPUs online
	MemTotal uint64
	Kernel   string
	OS       string
}

// Read describes this machine.
func Read() Machine {
	m := Machine{Cores: runtime.NumCPU(), Kernel: readTrim("/proc/sys/kernel/osrelease"), CPUModel: "unknown", OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				m.MemTotal = n * 1024
			}
		}
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

// LoadAvg returns /proc/loadavg's first three fields.
func LoadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// CPUTimes are the aggregate counters of /proc/stat's "cpu" line, in ticks.
type CPUTimes struct{ Busy, Total uint64 }

// ReadCPU reads the aggregate CPU counters.
func ReadCPU() CPUTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t CPUTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		t.Total += n
		if i != 3 && i != 4 { // idle, iowait
			t.Busy += n
		}
	}
	return t
}

// BusyTime is the CPU time (all CPUs together) that was busy between a and
// b.
func BusyTime(a, b CPUTimes) time.Duration {
	if b.Busy <= a.Busy {
		return 0
	}
	return time.Duration(b.Busy-a.Busy) * 10 * time.Millisecond // USER_HZ = 100
}

// BusySince is the share of all CPUs (0..1) that was busy between a and b.
func BusySince(a, b CPUTimes) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// Background measures, over d while the caller does nothing, the share of
// the machine's CPU time that something else used (other users' tests, say).
func Background(d time.Duration) float64 {
	a := ReadCPU()
	time.Sleep(d)
	return BusySince(a, ReadCPU())
}

// Bytes renders a byte count as MiB or GiB.
func Bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
