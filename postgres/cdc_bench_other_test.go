//go:build !linux

package postgres

import "time"

// No CPU accounting for BenchmarkCDCBulkLoad outside Linux.

func cdcSelfCPU() (time.Duration, bool)           { return 0, false }
func cdcProcCPU(pid int) (time.Duration, bool)    { return 0, false }
func cdcMachineCPU() (busy, total int64, ok bool) { return 0, 0, false }
