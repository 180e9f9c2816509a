//go:build !linux

package pgcdc

import "time"

// No CPU accounting for BenchmarkCDCBulkLoad outside Linux.

func selfCPU() (time.Duration, bool)               { return 0, false }
func procCPU(pid int) (time.Duration, bool)        { return 0, false }
func processCPU(int, string) (time.Duration, bool) { return 0, false }
func machineCPU() (busy, total int64, ok bool)     { return 0, 0, false }
