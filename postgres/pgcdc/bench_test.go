package pgcdc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

const (
	benchRows = 500_000 // rows per bulk load
	benchStep = 10_000  // rows per INSERT ... SELECT transaction
)

// benchLoad inserts benchRows rows into table, in transactions of
// benchStep rows: int key, text, numeric, timestamptz.
func benchLoad(b *testing.B, ctx context.Context, conn *pgx.Conn, table string) {
	for lo := 1; lo <= benchRows; lo += benchStep {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, 'customer-' || g, g * 1.25, now()
			FROM generate_series(%d, %d) g`, table, lo, lo+benchStep-1)); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuSnapshot is a snapshot of the CPU time of the processes involved.
type cpuSnapshot struct {
	self, walsender, backend time.Duration
	selfOK, walOK, backendOK bool
	busy, total              int64
	machineOK                bool
}

func takeCPU(walsender, backend int) cpuSnapshot {
	var c cpuSnapshot
	c.self, c.selfOK = selfCPU()
	c.walsender, c.walOK = procCPU(walsender)
	c.backend, c.backendOK = procCPU(backend)
	c.busy, c.total, c.machineOK = machineCPU()
	return c
}

// report reports the CPU time per row of each process between c and end,
// and the machine's busy share.
func (c cpuSnapshot) report(b *testing.B, end cpuSnapshot, rows int) {
	perRow := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(rows) }
	if c.selfOK && end.selfOK {
		b.ReportMetric(perRow(end.self-c.self), "cdc-cpu-us/row")
	}
	if c.walOK && end.walOK {
		b.ReportMetric(perRow(end.walsender-c.walsender), "walsender-cpu-us/row")
	}
	if c.backendOK && end.backendOK {
		b.ReportMetric(perRow(end.backend-c.backend), "insert-cpu-us/row")
	}
	if c.machineOK && end.machineOK && end.total > c.total {
		b.ReportMetric(100*float64(end.busy-c.busy)/float64(end.total-c.total), "machine-busy-%")
	}
}

func walPos(b *testing.B, ctx context.Context, conn *pgx.Conn) int64 {
	var pos int64
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'").Scan(&pos); err != nil {
		b.Fatal(err)
	}
	return pos
}

// benchConn connects to the test server (closed when b ends) and
// returns the connection with its backend's process id.
func benchConn(b *testing.B, ctx context.Context) (*pgx.Conn, string, int) {
	dsn := pgtest.URL(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	return conn, dsn, pid
}

// BenchmarkCDCBulkLoad bulk-loads rows (500,000 per iteration, in
// transactions of 10,000) into a table while a Source streams the
// changes to the memory bus, where a subscriber receives and acks each
// one. It reports the insert rate, the CDC rate (changes delivered to the
// subscriber per second, from the first insert to the last change
// delivered), the lag at the end of the load (rows not delivered yet, WAL
// the walsender had not decoded and sent yet, in bytes and in rows, and
// the catch-up time after the load),
// and the CPU time per row of this process (the source, the memory bus
// and the subscriber), of the walsender and of the inserting backend.
//
//	go test -run '^$' -bench CDCBulkLoad -benchtime 1x ./postgres
func BenchmarkCDCBulkLoad(b *testing.B) {
	const rows = benchRows
	ctx := context.Background()
	conn, dsn, backend := benchConn(b, ctx)
	for i := 0; i < b.N; i++ {
		name := eventkittest.UniqueName("cdcbench")
		table := name + "_t"
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, customer text, amount numeric(12,2), created timestamptz)", table)); err != nil {
			b.Fatal(err)
		}
		bus := memory.New()
		sub, err := bus.Subscribe(ctx, name+".>", memory.WithPolicy(memory.Block))
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for m := range sub.Messages() {
				_ = m.Ack()
				if got.Add(1) == rows {
					return
				}
			}
		}()
		src, err := New(dsn, bus, WithName(name), WithTables(table), WithSnapshot(false), WithMessagePrefixes(),
			WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithHeartbeat(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- src.Run(rctx) }()
		for src.Stats().ServerLSN == 0 { // streaming
			time.Sleep(10 * time.Millisecond)
		}
		var walsender int
		if err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", src.Slot()).Scan(&walsender); err != nil {
			b.Fatal(err)
		}
		// A second slot, read after the run with SQL, measures how fast the
		// server itself decodes the same WAL with pgoutput (no client).
		peer := name + "_peer"
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", peer); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		wal0 := walPos(b, ctx, conn)
		cpu0 := takeCPU(walsender, backend)
		start := time.Now()
		benchLoad(b, ctx, conn, table)
		insertDur := time.Since(start)
		atLoadEnd := got.Load()
		walPerRow := float64(walPos(b, ctx, conn)-wal0) / rows
		// WAL the walsender has not sent yet (its backlog; the rest of the
		// rows behind are in this process).
		var unsent int64
		if err := conn.QueryRow(ctx, `SELECT coalesce((SELECT pg_current_wal_lsn() - sent_lsn FROM pg_stat_replication
			WHERE pid = $1), 0)::bigint`, walsender).Scan(&unsent); err != nil {
			b.Fatal(err)
		}
		<-done
		dur := time.Since(start)
		cpu1 := takeCPU(walsender, backend)
		b.StopTimer()
		final := src.Stats()
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		sub.Close()
		bus.Close()
		peerStart := time.Now()
		var msgs int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
			'proto_version', '1', 'publication_names', $2)`, peer, src.Publication()).Scan(&msgs); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rows)/time.Since(peerStart).Seconds(), "pg-decode-rows/s")
		conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", peer)
		b.ReportMetric(float64(rows)/insertDur.Seconds(), "insert-rows/s")
		b.ReportMetric(float64(rows)/dur.Seconds(), "cdc-rows/s")
		b.ReportMetric(insertDur.Seconds()/dur.Seconds(), "cdc/insert")
		b.ReportMetric(float64(rows-atLoadEnd), "behind-rows-at-load-end")
		b.ReportMetric(float64(unsent), "wal-unsent-bytes-at-load-end")
		// The rows behind that were still in the server's WAL (the rest
		// were in this process).
		b.ReportMetric(float64(unsent)/walPerRow, "wal-unsent-rows-at-load-end")
		b.ReportMetric(walPerRow, "wal-bytes/row")
		b.ReportMetric((dur - insertDur).Seconds(), "catch-up-s")
		b.ReportMetric(final.LagSeconds, "lag-s-last-tx")
		cpu0.report(b, cpu1, rows)
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		dropSlot(b, dctx, dsn, src.Slot()) // retries while the walsender exits
		dcancel()
		conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+src.Publication())
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	}
}

// BenchmarkCDCInsertOnly is BenchmarkCDCBulkLoad's load without change
// data capture: the insert rate and the inserting backend's CPU time per
// row when nothing else competes for the machine (wal_level logical, no
// slot).
//
//	go test -run '^$' -bench CDCInsertOnly -benchtime 1x ./postgres
func BenchmarkCDCInsertOnly(b *testing.B) {
	ctx := context.Background()
	conn, _, backend := benchConn(b, ctx)
	for i := 0; i < b.N; i++ {
		table := eventkittest.UniqueName("cdcbench") + "_t"
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, customer text, amount numeric(12,2), created timestamptz)", table)); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		wal0 := walPos(b, ctx, conn)
		cpu0 := takeCPU(0, backend)
		start := time.Now()
		benchLoad(b, ctx, conn, table)
		insertDur := time.Since(start)
		cpu1 := takeCPU(0, backend)
		b.StopTimer()
		b.ReportMetric(float64(benchRows)/insertDur.Seconds(), "insert-rows/s")
		b.ReportMetric(float64(walPos(b, ctx, conn)-wal0)/benchRows, "wal-bytes/row")
		cpu0.report(b, cpu1, benchRows)
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	}
}
