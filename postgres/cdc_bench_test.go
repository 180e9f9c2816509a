package postgres

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
	"github.com/jackc/pgx/v5"
)

// BenchmarkCDCBulkLoad bulk-loads rows (500,000 per iteration, in
// transactions of 10,000) into a table while a CDCSource streams the
// changes to the memory bus, and reports the insert rate, the CDC rate
// (changes delivered to a subscriber per second, from the first insert to
// the last change delivered) and the lag at the end of the load.
//
//	go test -run '^$' -bench CDCBulkLoad -benchtime 1x ./postgres
func BenchmarkCDCBulkLoad(b *testing.B) {
	const rows, step = 500_000, 10_000
	dsn := eventkittest.ServerAddr(b, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
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
		src, err := NewCDCSource(dsn, bus, WithCDCName(name), WithCDCTables(table), WithCDCSnapshot(false), WithCDCMessagePrefixes(),
			WithCDCLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithCDCHeartbeat(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- src.Run(rctx) }()
		for src.Stats().ServerLSN == 0 { // streaming
			time.Sleep(10 * time.Millisecond)
		}
		// A second slot, read after the run with SQL, measures how fast the
		// server itself decodes the same WAL with pgoutput (no client).
		peer := name + "_peer"
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", peer); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for lo := 1; lo <= rows; lo += step {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, 'customer-' || g, g * 1.25, now()
				FROM generate_series(%d, %d) g`, table, lo, lo+step-1)); err != nil {
				b.Fatal(err)
			}
		}
		insertDur := time.Since(start)
		atLoadEnd := got.Load()
		statsAtEnd := src.Stats()
		<-done
		cdcDur := time.Since(start)
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
		b.ReportMetric(float64(rows)/cdcDur.Seconds(), "cdc-rows/s")
		b.ReportMetric(float64(rows-atLoadEnd), "behind-at-load-end")
		b.ReportMetric(float64(statsAtEnd.LagBytes), "lag-bytes-at-load-end")
		b.ReportMetric((cdcDur - insertDur).Seconds(), "catch-up-s")
		b.ReportMetric(final.LagSeconds, "lag-s-last-tx")
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		cdcDropSlot(b, dctx, dsn, src.Slot()) // retries while the walsender exits
		dcancel()
		conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+src.Publication())
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	}
}
