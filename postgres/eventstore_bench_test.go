package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// cpuMeter measures the CPU time of a benchmark on both sides: this
// process's (the client's) and that of the PostgreSQL backends of its
// pool, which the machine's load from elsewhere does not inflate the way
// it inflates the wall clock.
type cpuMeter struct {
	pool   *pgxpool.Pool
	client time.Duration
}

func startCPU(pool *pgxpool.Pool) *cpuMeter { return &cpuMeter{pool: pool, client: processCPU()} }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU is the CPU time used so far by the server processes of the
// pool's connections (all idle once the benchmark is done), read from
// /proc: the server must run on this machine, or it reports 0.
func backendCPU(pool *pgxpool.Pool) time.Duration {
	conns := pool.AcquireAllIdle(context.Background())
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	var total time.Duration
	for _, c := range conns {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Conn().PgConn().PID()))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, stime: fields 14, 15
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * (time.Second / 100) // USER_HZ
	}
	return total
}

// report reports the CPU per event of the client and of the server since
// start: the server's counts the whole life of the pool's connections,
// which are opened for the benchmark.
func (m *cpuMeter) report(b *testing.B, events int) {
	b.ReportMetric(float64((processCPU()-m.client).Microseconds())/float64(events), "client-cpu-us/event")
	b.ReportMetric(float64(backendCPU(m.pool).Microseconds())/float64(events), "server-cpu-us/event")
}

// BenchmarkPostgresAppendBatch appends 100 events per call, from one
// writer and from 4 concurrent writers (whose batches group commit joins).
func BenchmarkPostgresAppendBatch(b *testing.B) {
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ctx := context.Background()
			pool, schema := esTestPool(b)
			s := esNewStoreOn(b, pool, schema)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu := startCPU(pool)
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
			cpu.report(b, b.N*100)
		})
	}
	// The floor of the machine in the same run: raw pgx, one transaction
	// per 100 rows (BEGIN, COPY, COMMIT) into the same schema, with no
	// version check, no position lock and no idempotency lookup.
	b.Run("raw-pgx-copy", func(b *testing.B) {
		ctx := context.Background()
		pool, schema := esTestPool(b)
		esNewStoreOn(b, pool, schema) // its tables
		cols := []string{"position", "stream_id", "version", "event_id", "source", "type", "subject", "time", "content_type", "data_schema", "extensions", "data"}
		b.ResetTimer()
		cpu := startCPU(pool)
		start := time.Now()
		for i := 0; i < b.N; i++ {
			rows := make([][]any, 100)
			for j := range rows {
				e := esBenchEvent(fmt.Sprintf("e%d-%d", i, j))
				tm := e.Time().Format(time.RFC3339Nano)
				rows[j] = []any{int64(i*100 + j + 1), fmt.Sprintf("s%d", i%50), int64(i*100 + j + 1), e.ID(), e.Source(), e.Type(), e.Subject(), tm, e.DataContentType(), nil, nil, e.Data()}
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "events"}, cols, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		cpu.report(b, b.N*100)
	})
}

// BenchmarkReadAll replays the global log in pages of 1000 events.
func BenchmarkReadAll(b *testing.B) {
	ctx := context.Background()
	pool, schema := esTestPool(b)
	s := esNewStoreOn(b, pool, schema)
	const total = 50_000
	eventkittest.BenchmarkEventStoreReadAll(b, s, total, 100, esBenchEvent)
	// The floor in the same run: the same pages read with raw pgx into
	// plain values, without building CloudEvents.
	b.StartTimer()
	start := time.Now()
	raw := 0
	for i := 0; i < b.N; i++ {
		var after int64
		for {
			rows, err := pool.Query(ctx, `SELECT position, stream_id, version, event_id, source, type, subject, time, content_type, data_schema, extensions, data, recorded_at FROM `+pgx.Identifier{schema, "events"}.Sanitize()+` WHERE position > $1 ORDER BY position LIMIT 1000`, after)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var (
					pos, ver              int64
					st, id, src, typ      string
					subj, tm, ct, ds, ext *string
					data                  []byte
					rec                   time.Time
				)
				if err := rows.Scan(&pos, &st, &ver, &id, &src, &typ, &subj, &tm, &ct, &ds, &ext, &data, &rec); err != nil {
					b.Fatal(err)
				}
				after = pos
				n++
			}
			rows.Close()
			if n == 0 {
				break
			}
			raw += n
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(raw)/time.Since(start).Seconds(), "raw-pgx-events/s")
}
