package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
)

// BenchmarkSQLiteAppend appends one event, or 100 events, per call (WAL,
// synchronous=NORMAL), and reports events/s.
func BenchmarkSQLiteAppend(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			ctx := context.Background()
			s := esNewStore(b)
			batch := make([]event.Event, size)
			versions := map[string]uint64{}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = eventkittest.NewEvent(fmt.Sprintf("e%d-%d", i, j))
				}
				stream := fmt.Sprintf("s%d", i%20)
				res, err := s.Append(ctx, stream, es.Exact(versions[stream]), batch...)
				if err != nil {
					b.Fatal(err)
				}
				versions[stream] = res.Version
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkSQLiteReadAll replays the global log in pages of 1000 events.
func BenchmarkSQLiteReadAll(b *testing.B) {
	eventkittest.BenchmarkEventStoreReadAll(b, esNewStore(b), 20_000, 10, eventkittest.NewEvent)
}
