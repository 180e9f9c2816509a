package pgcdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// eventRecorder is a Publisher that keeps what it is given; fail, when set,
// makes Publish fail.
type eventRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
	fail   error
	notify chan struct{}
}

type recordedEvent struct {
	topic  string
	ev     event.Event
	change cdc.Change
}

func newCDCRecorder() *eventRecorder { return &eventRecorder{notify: make(chan struct{}, 1)} }

func (r *eventRecorder) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	for _, e := range events {
		c, err := cdc.Decode(e.Data())
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		r.events = append(r.events, recordedEvent{topic, e, c})
	}
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *eventRecorder) Close() error { return nil }

func (r *eventRecorder) snapshot() []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedEvent(nil), r.events...)
}

// wait returns the recorded events once there are at least n.
func (r *eventRecorder) wait(t *testing.T, n int) []recordedEvent {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		if ev := r.snapshot(); len(ev) >= n {
			return ev
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("got %d events, want %d", len(r.snapshot()), n)
		}
	}
}

// noLeaks checks, after the test's cleanups, that the goroutines the
// test started have ended.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

type testEnv struct {
	dsn   string
	conn  *pgx.Conn
	name  string // unique: table, publication and slot names derive from it
	table string
}

// newCDCEnv creates a table (with ddl's columns) and drops it, its
// publication and its slot at the end of the test.
func newCDCEnv(t *testing.T, columns string) *testEnv {
	t.Helper()
	return newCDCEnvAt(t, pgtest.URL(t), columns)
}

// newCDCEnvAt is newCDCEnv on the server at dsn.
func newCDCEnvAt(t *testing.T, dsn, columns string) *testEnv {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{dsn: dsn, conn: conn, name: eventkittest.UniqueName("cdc")}
	env.table = env.name + "_t"
	env.exec(t, fmt.Sprintf("CREATE TABLE %s (%s)", env.table, columns))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dropSlot(t, ctx, dsn, "eventkit_"+env.name)
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// env.conn, not conn: a test may have replaced a dead connection.
		env.conn.Exec(ctx, fmt.Sprintf("DROP PUBLICATION IF EXISTS eventkit_%s", env.name))
		env.conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s CASCADE", env.table))
		env.conn.Close(ctx)
	})
	return env
}

// dropSlot drops a slot, retrying while its walsender exits.
func dropSlot(t testing.TB, ctx context.Context, dsn, slot string) {
	var err error
	for ctx.Err() == nil {
		if err = DropSlot(ctx, dsn, slot); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("drop slot %s: %v", slot, err)
}

// create creates the table or role (kind) name with the rest of the
// statement, dropped at the end of t.
func (e *testEnv) create(t testing.TB, kind, name, rest string) {
	t.Helper()
	e.exec(t, fmt.Sprintf("CREATE %s %s %s", kind, name, rest))
	// e.conn, read at clean-up: a test may have replaced a dead connection.
	t.Cleanup(func() { e.conn.Exec(context.Background(), fmt.Sprintf("DROP %s IF EXISTS %s", kind, name)) })
}

// otherTable creates the table named e.name+suffix with columns, dropped at
// the end of the test, and returns its name.
func (e *testEnv) otherTable(t testing.TB, suffix, columns string) string {
	t.Helper()
	name := e.name + suffix
	e.create(t, "TABLE", name, "("+columns+")")
	return name
}

func (e *testEnv) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// start runs a source over the env's table until the end of the test.
func (e *testEnv) start(t *testing.T, pub eventkit.Publisher, opts ...Option) *Source {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Other sessions of the database may emit logical messages too: take
	// only the test's own.
	opts = append([]Option{WithLogger(logger), WithName(e.name), WithMessagePrefixes(e.name+"_orders", e.name+"_audit"), WithTables(e.table), WithSnapshot(false),
		WithHeartbeat(200 * time.Millisecond)}, opts...)
	src, err := New(e.dsn, pub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	e.waitSlot(t, "eventkit_"+e.name)
	return src
}

// waitSlot waits until a walsender streams from the slot. (The slot is
// already active while CREATE_REPLICATION_SLOT waits for its consistent
// point; changes committed before that point are not in the stream.)
func (e *testEnv) waitSlot(t *testing.T, slot string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := e.conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots s
			JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming')`, slot).Scan(&n)
		if err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no walsender streams from slot %s: %v", slot, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *testEnv) confirmedLSN(t *testing.T) uint64 {
	t.Helper()
	var s string
	if err := e.conn.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
		"eventkit_"+e.name).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return parseLSN(t, s)
}

func parseLSN(t testing.TB, s string) uint64 {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("LSN %q: %v", s, err)
	}
	return hi<<32 | lo
}

func jsonEq(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want: %v", what, err)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if string(gj) != string(wj) {
		t.Fatalf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

func TestCDCTypeMapping(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, `id bigint PRIMARY KEY, i2 smallint, i4 int, f4 real, f8 double precision, fnan double precision,
		num numeric(20,5), t text, vc varchar(10), b bool, js json, jb jsonb, ts timestamptz, tsn timestamp, d date,
		u uuid, by bytea, ai int[], at text[], a2 int[][], ajb jsonb[], anum numeric[], mood_t text, n text`)
	rec := newCDCRecorder()
	env.start(t, rec, WithProtoVersion(2))
	env.exec(t, fmt.Sprintf(`INSERT INTO %s VALUES (9007199254740993, -32768, 2147483647, 1.5, 0.1, 'NaN',
		'123456789012345.12345', 'h"é\n', 'abc', true, '{"a": [1, 2]}', '{"b": {"c": null}}',
		'2024-02-29 13:14:15.123456+02', '2024-02-29 13:14:15', '2024-02-29',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', '{1,NULL,3}', '{"a b","c\"d",NULL}',
		'{{1,2},{3,4}}', ARRAY['{"x":1}'::jsonb], '{1.50,NaN}', 'happy', NULL)`, env.table))
	ev := rec.wait(t, 1)
	c := ev[0].change
	if c.Op != cdc.OpCreate || c.Before != nil {
		t.Fatalf("change %+v", c)
	}
	// Debezium's default forms (TestDebeziumParityTypes compares them with
	// Debezium's own): numeric(20,5) as the unscaled value's bytes, json
	// as its text, timestamp in µs, date in days.
	jsonEq(t, "after", c.After, `{"id": 9007199254740993, "i2": -32768, "i4": 2147483647, "f4": 1.5, "f8": 0.1, "fnan": "NaN",
		"num": "AKtUqYzrHjHZ", "t": "h\"é\\n", "vc": "abc", "b": true, "js": "{\"a\": [1, 2]}", "jb": "{\"b\": {\"c\": null}}",
		"ts": "2024-02-29T11:14:15.123456Z", "tsn": 1709212455000000, "d": 19782,
		"u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "by": "AP8Q", "ai": [1, null, 3], "at": ["a b", "c\"d", null],
		"a2": [[1, 2], [3, 4]], "ajb": ["{\"x\": 1}"], "anum": ["1.50", "NaN"], "mood_t": "happy", "n": null}`)
	// Integers beyond 2^53 stay exact in the JSON text.
	if !strings.Contains(string(ev[0].ev.Data()), `9007199254740993`) {
		t.Fatalf("bigint not exact: %s", ev[0].ev.Data())
	}
	e := ev[0].ev
	if e.Type() != ChangeType || e.Subject() != "public."+env.table || e.Source() != "/debezium/postgresql/"+env.name ||
		ev[0].topic != env.name+".public."+env.table || e.DataContentType() != "application/json" {
		t.Fatalf("event attributes: %s topic %s", e, ev[0].topic)
	}
	if pk, _ := e.Extensions()["partitionkey"].(string); pk != "public."+env.table+`:{"id":9007199254740993}` {
		t.Fatalf("partitionkey %q", pk)
	}
	s := c.Source
	if s.Connector != "postgresql" || s.Name != env.name || s.DB != "postgres" || s.Schema != "public" || s.Table != env.table ||
		s.TxID == 0 || s.LSN == 0 || s.Snapshot != cdc.SnapshotFalse || s.TsMs == 0 || c.TsMs < s.TsMs-1000 || s.Version != SourceVersion {
		t.Fatalf("source %+v ts_ms %d", s, c.TsMs)
	}
}

func TestCDCArrayLiterals(t *testing.T) {
	for _, c := range []struct {
		typ  uint32
		in   string
		want string
	}{
		{1007, "{}", "[]"},
		{1007, "[0:1]={5,6}", "[5,6]"},
		{1009, `{"",x,"{}"}`, `["","x","{}"]`},
		{1009, `{"a\\b"}`, `["a\\b"]`},
		{1000, "{t,f}", "[true,false]"},
		{1185, `{"2024-01-01 00:00:00+00"}`, `["2024-01-01T00:00:00.000000Z"]`},
		{1001, `{"\\x0102"}`, `["AQI="]`},
		{1007, "{1,2", `"{1,2"`}, // malformed: kept as text
		{1007, "{1,,2}", `"{1,,2}"`},
		{1184, "infinity", `"infinity"`},
		{1184, "2024-01-01 00:00:00+05", `"2023-12-31T19:00:00.000000Z"`},
		{20, "12x", `"12x"`},
		{701, "Infinity", `"Infinity"`},
		{701, "-1.5e-07", `-1.5e-07`},
	} {
		got := string(appendValue(nil, c.typ, c.in))
		if got != c.want {
			t.Errorf("appendValue(%d, %q) = %s, want %s", c.typ, c.in, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("appendValue(%d, %q) = %s: invalid JSON", c.typ, c.in, got)
		}
	}
}

func TestCDCReplicaIdentityAndToast(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY, note text, big text")
	env.exec(t, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN big SET STORAGE EXTERNAL", env.table))
	rec := newCDCRecorder()
	env.start(t, rec)
	big := strings.Repeat("0123456789abcdef", 1024) // 16 kB, stored out of line
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (1, 'a', $1)", env.table), big)
	env.exec(t, fmt.Sprintf("UPDATE %s SET note = 'b' WHERE id = 1", env.table))
	env.exec(t, fmt.Sprintf("UPDATE %s SET id = 2 WHERE id = 1", env.table))
	env.exec(t, fmt.Sprintf("DELETE FROM %s WHERE id = 2", env.table))
	env.exec(t, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", env.table))
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (3, 'c', 'small')", env.table))
	env.exec(t, fmt.Sprintf("UPDATE %s SET note = 'd' WHERE id = 3", env.table))
	env.exec(t, fmt.Sprintf("DELETE FROM %s WHERE id = 3", env.table))
	ev := rec.wait(t, 8)
	want := []struct {
		op            cdc.Op
		before, after string
	}{
		{cdc.OpCreate, "", fmt.Sprintf(`{"id":1,"note":"a","big":%q}`, big)},
		// DEFAULT: no before image; the unchanged TOASTed value is not sent.
		{cdc.OpUpdate, "", `{"id":1,"note":"b","big":"__debezium_unavailable_value"}`},
		// DEFAULT, key changed: as Debezium, a delete of the old key (the
		// other columns null), then a create.
		{cdc.OpDelete, `{"id":1,"note":null,"big":null}`, ""},
		{cdc.OpCreate, "", `{"id":2,"note":"b","big":"__debezium_unavailable_value"}`},
		{cdc.OpDelete, `{"id":2,"note":null,"big":null}`, ""},
		{cdc.OpCreate, "", `{"id":3,"note":"c","big":"small"}`},
		// FULL: the whole old row.
		{cdc.OpUpdate, `{"id":3,"note":"c","big":"small"}`, `{"id":3,"note":"d","big":"small"}`},
		{cdc.OpDelete, `{"id":3,"note":"d","big":"small"}`, ""},
	}
	for i, w := range want {
		c := ev[i].change
		if c.Op != w.op {
			t.Fatalf("event %d: op %s, want %s", i, c.Op, w.op)
		}
		if w.before == "" && c.Before != nil || w.after == "" && c.After != nil {
			t.Fatalf("event %d: before %s after %s", i, c.Before, c.After)
		}
		if w.before != "" {
			jsonEq(t, fmt.Sprintf("event %d before", i), c.Before, w.before)
		}
		if w.after != "" {
			jsonEq(t, fmt.Sprintf("event %d after", i), c.After, w.after)
		}
	}
	// With FULL, the partition key is still the primary key.
	if pk := ev[6].ev.Extensions()["partitionkey"]; pk != "public."+env.table+`:{"id":3}` {
		t.Fatalf("partitionkey under FULL: %v", pk)
	}
}

func TestCDCTransactionsWholeAndMessages(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY, v int")
	other := env.otherTable(t, "_o", "id int PRIMARY KEY")
	rec := newCDCRecorder()
	env.start(t, rec, WithTables(other), WithBatch(3))

	// Two interleaved transactions: B commits first, so B's changes come
	// first, whole, then A's.
	ctx := context.Background()
	a, err := env.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	connB, err := pgx.Connect(ctx, env.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer connB.Close(ctx)
	b, err := connB.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := a.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ($1, 0)", env.table), 100+i); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ($1, 0)", env.table), 200+i); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ($1)", other), 200+i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, 'from a')", env.name+"_orders"); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	env.exec(t, "SELECT pg_logical_emit_message(false, $1, '\\x00ff'::bytea)", env.name+"_audit")
	env.exec(t, "SELECT pg_logical_emit_message(false, $1, 'filtered out')", env.name+"_other")
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	env.exec(t, fmt.Sprintf("TRUNCATE %s", env.table))
	ev := rec.wait(t, 18)
	var got []string
	for _, r := range ev {
		c := r.change
		switch c.Op {
		case cdc.OpCreate:
			var row struct{ ID int }
			if err := c.Row(&row); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s:%d", c.Source.Table[len(env.name):], row.ID))
		case cdc.OpMessage:
			got = append(got, "m:"+strings.TrimPrefix(c.Message.Prefix, env.name)+":"+string(c.Message.Content))
			if r.ev.Type() != MessageType || r.ev.Subject() != c.Message.Prefix || r.topic != env.name+".message."+c.Message.Prefix {
				t.Fatalf("message event %s on %s", r.ev, r.topic)
			}
		case cdc.OpTruncate:
			got = append(got, "t:"+c.Source.Table[len(env.name):])
		}
	}
	var want []string
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("_t:%d", 200+i), fmt.Sprintf("_o:%d", 200+i))
	}
	want = append(want, "m:_audit:\x00\xff")
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("_t:%d", 100+i))
	}
	want = append(want, "m:_orders:from a", "t:_t")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	// A transaction's changes share its txId; ids are unique.
	ids := map[string]bool{}
	for _, r := range ev {
		if ids[r.ev.ID()] {
			t.Fatalf("duplicate id %s", r.ev.ID())
		}
		ids[r.ev.ID()] = true
	}
	if ev[0].change.Source.TxID != ev[9].change.Source.TxID || ev[0].change.Source.TxID == ev[11].change.Source.TxID {
		t.Fatalf("txIds: %d %d %d", ev[0].change.Source.TxID, ev[9].change.Source.TxID, ev[11].change.Source.TxID)
	}
}

func TestCDCInitialSnapshot(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY, v text")
	env.exec(t, fmt.Sprintf("INSERT INTO %s SELECT g, 'old' FROM generate_series(1, 250) g", env.table))
	rec := newCDCRecorder()
	env.start(t, rec, WithSnapshot(true), WithBatch(100))
	env.exec(t, fmt.Sprintf("UPDATE %s SET v = 'new' WHERE id <= 5", env.table))
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (251, 'new')", env.table))
	ev := rec.wait(t, 256)
	seen := map[int]bool{}
	for i, r := range ev[:250] {
		c := r.change
		var row struct {
			ID int
			V  string
		}
		if err := c.Row(&row); err != nil {
			t.Fatal(err)
		}
		// Debezium's markers: the first row, the last, true between.
		wantSnap := cdc.SnapshotTrue
		switch i {
		case 0:
			wantSnap = cdc.SnapshotFirst
		case 249:
			wantSnap = cdc.SnapshotLast
		}
		if c.Op != cdc.OpRead || row.V != "old" || seen[row.ID] || c.Source.Snapshot != wantSnap || c.Before != nil {
			t.Fatalf("snapshot event %d: %+v row %+v", i, c, row)
		}
		seen[row.ID] = true
	}
	for i, r := range ev[250:] {
		if r.change.Op == cdc.OpRead || r.change.Source.Snapshot != cdc.SnapshotFalse {
			t.Fatalf("streamed event %d: %+v", i, r.change)
		}
	}
	if len(rec.snapshot()) != 256 {
		t.Fatalf("%d events, want 256", len(rec.snapshot()))
	}
}

func TestCDCHeartbeatAdvancesSlot(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY")
	filtered := env.otherTable(t, "_f", "id int")
	rec := newCDCRecorder()
	env.start(t, rec)
	// WAL written by a table outside the publication only.
	env.exec(t, fmt.Sprintf("INSERT INTO %s SELECT generate_series(1, 1000)", filtered))
	var walText string
	if err := env.conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&walText); err != nil {
		t.Fatal(err)
	}
	target := parseLSN(t, walText)
	deadline := time.Now().Add(30 * time.Second)
	for env.confirmedLSN(t) < target {
		if time.Now().After(deadline) {
			t.Fatalf("slot stayed at %X, want %X", env.confirmedLSN(t), target)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(rec.snapshot()); n != 0 {
		t.Fatalf("%d events from a filtered table", n)
	}
}

func TestCDCConfirmsOnlyPublished(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY")
	rec := newCDCRecorder()
	rec.fail = errors.New("sink down")
	src := env.start(t, rec, WithReconnect(50*time.Millisecond, 100*time.Millisecond))
	env.exec(t, fmt.Sprintf("INSERT INTO %s SELECT generate_series(1, 10)", env.table))
	// The sink refuses: the source retries (reconnects) and the slot does
	// not move past the transaction. (It may move up to the transaction's
	// commit: other sessions of a shared server write WAL too, and the
	// keepalives carry their positions.)
	deadline := time.Now().Add(30 * time.Second)
	for src.Stats().Reconnects < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no retries while the sink is down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	during := env.confirmedLSN(t)
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	ev := rec.wait(t, 10)
	for i, r := range ev {
		var row struct{ ID int }
		if err := r.change.Row(&row); err != nil || row.ID != i+1 {
			t.Fatalf("event %d: %+v %v", i, row, err)
		}
	}
	// The ids are "<name>:<commit LSN>:<n>", the commit LSN being where
	// the commit record starts (Begin's final LSN).
	parts := strings.Split(ev[0].ev.ID(), ":")
	if len(parts) != 3 || parts[0] != env.name {
		t.Fatalf("event id %q", ev[0].ev.ID())
	}
	end := parseLSN(t, parts[1])
	// A keepalive may carry exactly the commit LSN (the end of the record
	// before it). Confirming it loses nothing: the server skips on restart
	// only the transactions whose commit record starts before the
	// confirmed position. Past it, the transaction would be skipped.
	if during > end {
		t.Fatalf("slot moved to %X, past the transaction (commit LSN %X), while the sink refused", during, end)
	}
	deadline = time.Now().Add(30 * time.Second)
	for env.confirmedLSN(t) <= end {
		if time.Now().After(deadline) {
			t.Fatal("slot did not pass the transaction after the sink recovered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCDCConfiguration(t *testing.T) {
	rec := newCDCRecorder()
	for name, opts := range map[string][]Option{
		"bad name":    {WithName("a.b")},
		"bad version": {WithProtoVersion(3)},
		"bad batch":   {WithBatch(0)},
	} {
		if _, err := New("postgres://x@127.0.0.1/db", rec, opts...); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New("postgres://x@127.0.0.1/db", nil); err == nil {
		t.Error("nil publisher accepted")
	}
	// A missing publication without tables is a configuration error: Run
	// returns it instead of retrying.
	dsn := pgtest.URL(t)
	src, err := New(dsn, rec, WithName(eventkittest.UniqueName("cdcnone")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Run(ctx); err == nil || !strings.Contains(err.Error(), "no tables") {
		t.Fatalf("Run = %v", err)
	}
}

func TestCDCNoMessages(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY")
	rec := newCDCRecorder()
	// No prefix: the server is not asked for messages.
	env.start(t, rec, WithMessagePrefixes())
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (1)", env.table))
	env.exec(t, "SELECT pg_logical_emit_message(false, $1, 'x')", env.name+"_orders")
	env.exec(t, fmt.Sprintf("BEGIN; INSERT INTO %s VALUES (2); SELECT pg_logical_emit_message(true, '%s_orders', 'y'); COMMIT", env.table, env.name))
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (3)", env.table))
	ev := rec.wait(t, 3)
	time.Sleep(200 * time.Millisecond)
	if got := rec.snapshot(); len(got) != 3 {
		t.Fatalf("%d events, want the 3 rows", len(got))
	}
	for i, r := range ev {
		var row struct{ ID int }
		if r.change.Op != cdc.OpCreate || r.change.Row(&row) != nil || row.ID != i+1 {
			t.Fatalf("event %d: %+v", i, r.change)
		}
	}
}
