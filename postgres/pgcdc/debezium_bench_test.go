package pgcdc

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/jackc/pgx/v5"
)

// countingPublisher counts the events it is given.
type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Publish(_ context.Context, _ string, events ...event.Event) error {
	p.n.Add(int64(len(events)))
	return nil
}

func (p *countingPublisher) Close() error { return nil }

// BenchmarkDebeziumParityLoad runs BenchmarkCDCBulkLoad's load (500,000
// rows in transactions of 10,000: int key, text, numeric, timestamptz)
// once, captured at the same time by Debezium 3.6.1.Final (embedded
// engine, JsonConverter without schemas, full JIT, -Xmx256m) and by the
// Source (to a Publisher that counts), each on its own slot. It reports
// the insert rate, each one's rate (rows received per second, from the
// first insert to its last row), its lag at the end of the load (rows not
// received yet) and catch-up time, and its CPU time per row (Debezium's
// JVM; this process: the Source, and reading Debezium's output lines).
//
//	go test -run '^$' -bench DebeziumParityLoad -benchtime 1x ./postgres/pgcdc
func BenchmarkDebeziumParityLoad(b *testing.B) {
	const rows = benchRows
	ctx := context.Background()
	conn, dsn, _ := benchConn(b, ctx)
	for i := 0; i < b.N; i++ {
		name, table := dbzBenchTable(b, ctx, conn)
		dbz := startDebezium(b, dsn, name, []string{table},
			map[string]string{"converter.schemas.enable": "false"}, dbzRun{jvmOpts: "-XX:+UseSerialGC", countOnly: true})
		waitCount(b, "Debezium's snapshot", dbz.count.Load, 1)

		pub := &countingPublisher{}
		src, err := New(dsn, pub, WithName(name), WithTables(table), WithMessagePrefixes())
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- src.Run(runCtx) }()
		b.Cleanup(func() {
			cancel()
			<-done
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			dropSlot(b, cctx, dsn, src.Slot())
			conn.Exec(cctx, "DROP PUBLICATION IF EXISTS "+src.Publication())
		})
		waitCount(b, "the Source's snapshot", pub.n.Load, 1)

		jvm := dbz.cmd.Process.Pid // run.sh execs java
		selfStart, _ := selfCPU()
		jvmStart, _ := processCPU(jvm, "java")
		b.ResetTimer()
		start := time.Now()
		benchLoad(b, ctx, conn, table)
		loaded := time.Since(start)
		dbzAtLoad, ekAtLoad := dbz.count.Load()-1, pub.n.Load()-1
		// Each one's end is taken when its own count completes (the CPU
		// times when both did).
		dones := waitCounts(b, []func() int64{dbz.count.Load, pub.n.Load}, rows+1)
		dbzDone, ekDone := dones[0], dones[1]
		b.StopTimer()
		selfEnd, okSelf := selfCPU()
		jvmEnd, okJVM := processCPU(jvm, "java")

		b.ReportMetric(rows/loaded.Seconds(), "insert-rows/s")
		for _, r := range []struct {
			who     string
			atLoad  int64
			doneAt  time.Time
			cpu     time.Duration
			cpuOK   bool
			comment string
		}{
			{"dbz", dbzAtLoad, dbzDone, jvmEnd - jvmStart, okJVM && jvm > 0, "Debezium's JVM"},
			{"ek", ekAtLoad, ekDone, selfEnd - selfStart, okSelf, "this process"},
		} {
			b.ReportMetric(rows/r.doneAt.Sub(start).Seconds(), r.who+"-rows/s")
			b.ReportMetric(float64(rows-r.atLoad), r.who+"-lag-rows")
			b.ReportMetric(max(0, r.doneAt.Sub(start.Add(loaded)).Seconds()), r.who+"-catchup-s")
			if r.cpuOK {
				b.ReportMetric(float64(r.cpu.Microseconds())/rows, r.who+"-cpu-us/row")
			}
		}
	}
}

// dbzBenchTable creates the table of the load (dropped when b ends), with
// one row for the snapshots, and returns the name of the sources and the
// table's.
func dbzBenchTable(b *testing.B, ctx context.Context, conn *pgx.Conn) (name, table string) {
	name = eventkittest.UniqueName("dbzbench")
	table = name + "_t"
	b.Cleanup(func() { conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, customer text, amount numeric(12,2), created timestamptz);
		INSERT INTO %[1]s VALUES (0, 'seed', 0, now())`, table)); err != nil {
		b.Fatal(err)
	}
	return name, table
}

// waitCounts waits until every count reaches n, and returns when each
// did.
func waitCounts(b *testing.B, counts []func() int64, n int64) []time.Time {
	b.Helper()
	done := make([]time.Time, len(counts))
	deadline := time.Now().Add(10 * time.Minute)
	for left := len(counts); left > 0; {
		for i, c := range counts {
			if done[i].IsZero() && c() >= n {
				done[i] = time.Now()
				left--
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("counts not at %d after 10 minutes (done at %v)", n, done)
		}
		time.Sleep(5 * time.Millisecond) // polling counters with a deadline
	}
	return done
}

// waitCount waits until count() reaches n, and returns when it did.
func waitCount(b *testing.B, what string, count func() int64, n int64) time.Time {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d after 10 minutes", what, count(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter with a deadline
	}
	return time.Now()
}
