package testkit

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// ParallelRate runs op b.N times from 8 goroutines per core, each call
// with an id of its own ("1", "2", ...), and reports the calls per second
// as the metric unit (such as "steps/s"). An error of op fails b.
func ParallelRate(b *testing.B, unit string, op func(id string) error) {
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(strconv.FormatInt(n.Add(1), 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}
