package pgcdc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU accounting for BenchmarkCDCBulkLoad on Linux: this process's CPU
// time (getrusage), a local server process's (/proc/<pid>/stat), and the
// machine's busy share (/proc/stat).

func selfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// procCPU returns the CPU time of process pid, when it is a PostgreSQL
// process of this machine.
func procCPU(pid int) (time.Duration, bool) { return processCPU(pid, "postgres") }

// processCPU returns the CPU time of process pid (all its threads), when
// its command starts with command.
func processCPU(pid int, command string) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open || !strings.HasPrefix(s[open+1:closing], command) {
		return 0, false
	}
	f := strings.Fields(s[closing+1:])
	// After the command: state, ppid, ..., utime (field 14), stime (15).
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clkTck = 100 // USER_HZ of /proc on Linux
	return time.Duration(ut+st) * time.Second / clkTck, true
}

// machineCPU returns the busy and total jiffies of all CPUs.
func machineCPU() (busy, total int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest time is already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, true
}
