package pgcdc

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// Environment of the child process of TestCDCCrashRestart.
const (
	crashChildEnv = "EVENTKIT_CDC_CRASH_CHILD"
	crashDSNEnv   = "EVENTKIT_CDC_CRASH_DSN"
	crashNameEnv  = "EVENTKIT_CDC_CRASH_NAME"
)

// crashRowsDefault is the default number of rows of the crash test's
// load (EVENTKIT_CDC_CRASH_ROWS overrides it): each is inserted, then
// updated, so that the test checks twice as many changes. 100,000 is the
// load issue 10 names.
const crashRowsDefault = 100_000

func crashRowCount() int {
	if n, err := strconv.Atoi(os.Getenv("EVENTKIT_CDC_CRASH_ROWS")); err == nil && n > 0 {
		return n
	}
	return crashRowsDefault
}

// tableSink is a Publisher that stores each change (row id, value, op)
// in a sink table, one transaction per Publish: what the crash test counts.
type tableSink struct {
	conn  *pgx.Conn
	table string
}

func (s *tableSink) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	rows := make([][]any, 0, len(events))
	for _, e := range events {
		c, err := cdc.Decode(e.Data())
		if err != nil {
			return err
		}
		var row struct{ ID, V int }
		if err := c.Row(&row); err != nil {
			return err
		}
		rows = append(rows, []any{row.ID, row.V, string(c.Op), e.ID()})
	}
	_, err := s.conn.CopyFrom(ctx, pgx.Identifier{s.table}, []string{"id", "v", "op", "evid"}, pgx.CopyFromRows(rows))
	return err
}

func (s *tableSink) Close() error { return nil }

// TestCDCCrashChild is the child process of TestCDCCrashRestart: a source
// that publishes to the sink table until it is killed.
func TestCDCCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("the child process of TestCDCCrashRestart")
	}
	dsn, name := os.Getenv(crashDSNEnv), os.Getenv(crashNameEnv)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(dsn, &tableSink{conn: conn, table: name + "_sink"}, WithName(name),
		WithTables(name+"_t"), WithSnapshot(false), WithMessagePrefixes(), WithHeartbeat(100*time.Millisecond), WithBatch(2000))
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(src.Run(ctx)) // runs until killed
}

// TestCDCCrashRestart kills the source process (SIGKILL) in the middle of a
// load of crashRows inserts followed by as many updates, starts it again,
// and checks that every change arrived at least once, in order per row.
func TestCDCCrashRestart(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	crashRows := crashRowCount()
	env := newCDCEnv(t, "id int PRIMARY KEY, v int")
	sink := env.otherTable(t, "_sink", "seq bigserial PRIMARY KEY, id int, v int, op text, evid text")

	var child *eventkittest.Child
	startChild := func() {
		t.Helper()
		child = eventkittest.StartChild(t, "^TestCDCCrashChild$", crashChildEnv+"=1", crashDSNEnv+"="+env.dsn, crashNameEnv+"="+env.name)
	}
	kill := func() { _ = child.Kill() }
	startChild()
	env.waitSlot(t, "eventkit_"+env.name)

	count := func() int {
		var n int
		if err := env.conn.QueryRow(context.Background(), "SELECT count(*) FROM "+sink).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	step := max(crashRows/20, 1)
	killed := false
	load := func(sql string) {
		for lo := 1; lo <= crashRows; lo += step {
			env.exec(t, fmt.Sprintf(sql, env.table), lo, lo+step-1)
			if !killed && (count() >= crashRows/2 || lo > crashRows/2 && count() > 0) {
				// Mid-load and mid-stream: changes are in flight, some
				// published and not yet confirmed to the slot, and the
				// load goes on while the source is down.
				kill()
				killed = true
				t.Logf("killed the source after %d sink rows", count())
				startChild()
			}
		}
	}
	load("INSERT INTO %s SELECT g, 0 FROM generate_series($1::int, $2::int) g")
	load("UPDATE %s SET v = 1 WHERE id BETWEEN $1 AND $2")
	if !killed {
		// The source was slower than the load: kill it now, mid-stream.
		kill()
		killed = true
		t.Logf("killed the source after %d sink rows (load done)", count())
		startChild()
	}

	// Wait for every row's update.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := env.conn.QueryRow(context.Background(), "SELECT count(DISTINCT id) FROM "+sink+" WHERE op = 'u'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == crashRows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d updates arrived", n, crashRows)
		}
		time.Sleep(200 * time.Millisecond)
	}
	kill()

	// Every change at least once, in order per row: a row's insert comes
	// before its first update, and a resent insert is followed by its
	// update again (replays repeat a suffix of the history in order).
	rows, err := env.conn.Query(context.Background(), "SELECT id, v, op FROM "+sink+" ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	hist := make(map[int][]string, crashRows)
	total := 0
	for rows.Next() {
		var id, v int
		var op string
		if err := rows.Scan(&id, &v, &op); err != nil {
			t.Fatal(err)
		}
		hist[id] = append(hist[id], op+strconv.Itoa(v))
		total++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	dups := total - 2*crashRows
	bad := []int{}
	for id := 1; id <= crashRows; id++ {
		h := hist[id]
		if len(h) < 2 || h[0] != "c0" || h[len(h)-1] != "u1" {
			bad = append(bad, id)
			continue
		}
		for i := 1; i < len(h); i++ {
			if h[i] == "u1" && h[i-1] != "c0" && h[i-1] != "u1" || h[i] != "u1" && h[i] != "c0" {
				bad = append(bad, id)
				break
			}
		}
	}
	sort.Ints(bad)
	if len(bad) > 0 {
		t.Fatalf("%d rows out of order or missing, first %d: %v", len(bad), bad[0], hist[bad[0]])
	}
	if dups < 0 {
		t.Fatalf("%d sink rows for %d changes", total, 2*crashRows)
	}
	t.Logf("%d changes, %d resent after the crash", 2*crashRows, dups)
}

// TestCDCPostgresRestart restarts PostgreSQL (a server of the test's own,
// not the shared one) while the source streams: the source reconnects and
// every change arrives, in order per row.
func TestCDCPostgresRestart(t *testing.T) {
	noLeaks(t)
	pg := pgtest.StartPrivate(t)
	env := newCDCEnvAt(t, pg.URL(), "id int PRIMARY KEY, v int")
	rec := newCDCRecorder()
	src := env.start(t, rec, WithReconnect(100*time.Millisecond, time.Second))
	env.exec(t, fmt.Sprintf("INSERT INTO %s SELECT g, 0 FROM generate_series(1, 2000) g", env.table))
	rec.wait(t, 1)

	pg.Restart()
	// The test's own connection died with the server.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, env.dsn)
	if err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
	env.conn.Close(ctx)
	env.conn = c
	env.exec(t, fmt.Sprintf("UPDATE %s SET v = 1", env.table))
	env.exec(t, fmt.Sprintf("INSERT INTO %s SELECT g, 1 FROM generate_series(2001, 3000) g", env.table))

	// Wait for every row in its final state.
	final := map[int]int{}
	deadline := time.Now().Add(90 * time.Second)
	for len(final) < 3000 || countV(final, 1) < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows, %d final", len(final), countV(final, 1))
		}
		time.Sleep(50 * time.Millisecond)
		final = map[int]int{}
		last := map[int]string{}
		for i, r := range rec.snapshot() {
			var row struct{ ID, V int }
			if err := r.change.Row(&row); err != nil {
				t.Fatal(err)
			}
			// Per row: an update never comes before the row's insert.
			if r.change.Op == cdc.OpUpdate && last[row.ID] == "" {
				t.Fatalf("event %d: update of row %d before its insert", i, row.ID)
			}
			last[row.ID] = string(r.change.Op)
			final[row.ID] = row.V
		}
	}
	if src.Stats().Reconnects == 0 {
		t.Fatal("the source did not reconnect")
	}
}

func countV(m map[int]int, v int) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}
