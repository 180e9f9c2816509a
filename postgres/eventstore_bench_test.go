package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
)

func esBenchEvent(id string) event.Event {
	e := eventkittest.NewEvent(id)
	e.SetSubject("order-1")
	e.SetTime(time.Now())
	return e
}

// esBenchConcurrent runs b.N single-event appends from 16 goroutines, each
// to its own streams, and reports events/s.
func esBenchConcurrent(b *testing.B, s *postgres.EventStore) {
	ctx := context.Background()
	const G = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := map[string]uint64{}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				stream := fmt.Sprintf("g%d-s%d", g, i%8)
				res, err := s.Append(ctx, stream, es.Exact(versions[stream]), esBenchEvent(fmt.Sprintf("e%d", i)))
				if err != nil {
					b.Error(err)
					return
				}
				versions[stream] = res.Version
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkPostgresAppendConcurrent compares group commit with the naive
// baseline (one transaction per append, same schema) in the same run.
func BenchmarkPostgresAppendConcurrent(b *testing.B) {
	b.Run("naive", func(b *testing.B) {
		esBenchConcurrent(b, esNewStore(b, postgres.WithGroupCommit(false)))
	})
	b.Run("group-commit", func(b *testing.B) {
		s := esNewStore(b)
		esBenchConcurrent(b, s)
		st := s.Stats()
		if st.Transactions > 0 {
			b.ReportMetric(float64(st.Appends)/float64(st.Transactions), "appends/tx")
		}
	})
}

// BenchmarkPostgresAppendBatch appends 100 events per call, from one
// writer and from 4 concurrent writers (whose batches group commit joins).
func BenchmarkPostgresAppendBatch(b *testing.B) {
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ctx := context.Background()
			s := esNewStore(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					batch := make([]event.Event, 100)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						for j := range batch {
							batch[j] = esBenchEvent(fmt.Sprintf("e%d-%d", i, j))
						}
						if _, err := s.Append(ctx, fmt.Sprintf("w%d-s%d", w, i%50), es.Any, batch...); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkReadAll replays the global log in pages of 1000 events.
func BenchmarkReadAll(b *testing.B) {
	ctx := context.Background()
	s := esNewStore(b)
	const total = 50_000
	batch := make([]event.Event, 500)
	for i := 0; i < total/len(batch); i++ {
		for j := range batch {
			batch[j] = esBenchEvent(fmt.Sprintf("e%d-%d", i, j))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("s%d", i%100), es.Any, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	read := 0
	for i := 0; i < b.N; i++ {
		var after uint64
		for {
			page, err := s.ReadAll(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			after = page[len(page)-1].Position
		}
	}
	b.StopTimer()
	if read != b.N*total {
		b.Fatalf("read %d events; want %d", read, b.N*total)
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")
}
