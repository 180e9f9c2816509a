package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// esTestPool connects to the test server (skipping, or failing under
// CI=true, when it is absent) and creates a schema of its own for the test,
// dropped at the end. It returns the pool and the schema name.
func esTestPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	url := eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", url, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", url, err)
	}
	schema := eventkittest.UniqueName("ekes_")
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		pool.Close()
	})
	return pool, schema
}

func esNewStore(t testing.TB, opts ...postgres.EventStoreOption) *postgres.EventStore {
	t.Helper()
	pool, schema := esTestPool(t)
	s := esNewStoreOn(t, pool, schema, opts...)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	return s
}

// esNewStoreOn returns a store with opts on the tables events and
// positions of schema, migrated.
func esNewStoreOn(t testing.TB, pool *pgxpool.Pool, schema string, opts ...postgres.EventStoreOption) *postgres.EventStore {
	t.Helper()
	opts = append([]postgres.EventStoreOption{postgres.WithEventsTable(schema + ".events"), postgres.WithPositionsTable(schema + ".positions")}, opts...)
	s, err := postgres.NewEventStore(pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return eventkittest.Migrated(t, s)
}

func TestEventStore(t *testing.T) {
	// Every subscription and connection of the suite is gone at the end.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return esNewStore(t) })
}

func TestEventStoreWithoutGroupCommit(t *testing.T) {
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return esNewStore(t, postgres.WithGroupCommit(false)) })
}

// TestEventStoreGroupCommit proves that appends queued behind a running
// transaction are committed together, each with its own outcome.
func TestEventStoreGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := esNewStore(t)
	if _, err := s.Append(ctx, "gc-conflict", es.NoStream, eventkittest.NewEvent("c0")); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	const n = 16
	type outcome struct {
		res es.AppendResult
		err error
	}
	results := make([]outcome, n)
	st := esBehindHeldLock(t, s, n, func(i int) {
		var r es.AppendResult
		var err error
		switch {
		case i%4 == 3: // a conflict: the stream is at version 1
			r, err = s.Append(ctx, "gc-conflict", es.NoStream, eventkittest.NewEvent(fmt.Sprintf("x%d", i)))
		default:
			r, err = s.Append(ctx, fmt.Sprintf("gc-%d", i), es.NoStream, eventkittest.NewEvent(fmt.Sprintf("e%d", i)), eventkittest.NewEvent(fmt.Sprintf("f%d", i)))
		}
		results[i] = outcome{r, err}
	})
	wantTxs := uint64(1) // the leader's batch ...
	if st.Queued > 0 {
		wantTxs++ // ... then one group of all the others
	}
	after := s.Stats()
	if txs := after.Transactions - before.Transactions; txs != wantTxs {
		t.Fatalf("%d appends queued behind a held lock ran in %d transactions; want %d (the leader's batch, then one group)", n, txs, wantTxs)
	}
	seen := map[uint64]bool{}
	for i, o := range results {
		if i%4 == 3 {
			var ce *es.ConflictError
			if !errors.As(o.err, &ce) || ce.Stream != "gc-conflict" || ce.Actual != 1 {
				t.Fatalf("append %d: err = %v; want its own ConflictError", i, o.err)
			}
			continue
		}
		if o.err != nil || o.res.Version != 2 || len(o.res.Positions) != 2 {
			t.Fatalf("append %d = %+v, %v; want version 2 with 2 positions", i, o.res, o.err)
		}
		for _, p := range o.res.Positions {
			if seen[p] {
				t.Fatalf("position %d given twice", p)
			}
			seen[p] = true
		}
	}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 2*12; len(all) != want {
		t.Fatalf("log holds %d events; want %d", len(all), want)
	}
	for i, r := range all {
		if r.Position != uint64(i+1) {
			t.Fatalf("log position %d at index %d: gap", r.Position, i)
		}
	}
}

// TestEventStoreLargeAppend covers the COPY path of big appends.
func TestEventStoreLargeAppend(t *testing.T) {
	ctx := context.Background()
	s := esNewStore(t)
	evs := make([]event.Event, 120)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprintf("big-%d", i))
		evs[i].SetSubject("s")
		evs[i].SetExtension("seq", i)
	}
	if _, err := s.Append(ctx, "small", es.NoStream, eventkittest.NewEvent("small-0")); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, "big", es.NoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 120 || res.Positions[0] != 2 || res.Positions[119] != 121 {
		t.Fatalf("Append = version %d, positions %d..%d", res.Version, res.Positions[0], res.Positions[119])
	}
	got, err := s.ReadStream(ctx, "big", es.Forward, 0, 0)
	if err != nil || len(got) != 120 {
		t.Fatalf("ReadStream = %d events, %v", len(got), err)
	}
	for i := range got {
		if d := eventkittest.DiffEvents(evs[i], got[i].Event); d != "" {
			t.Fatalf("event %d: %s", i, d)
		}
	}
	again, err := s.Append(ctx, "big", es.NoStream, evs...)
	if err != nil || again.Version != 120 {
		t.Fatalf("idempotent re-append of 120 events = %+v, %v", again, err)
	}
}

// TestEventStoreRefusesInvalidOptions: NewEventStore fails with
// eventkit.ErrInvalidOption, naming the option (WithMaxBatch(0) was ignored
// before, and a table name with three parts was quoted as given).
func TestEventStoreRefusesInvalidOptions(t *testing.T) {
	type bad = eventkittest.BadOption[postgres.EventStoreOption]
	eventkittest.TestBadOptions(t, func(o postgres.EventStoreOption) error {
		_, err := postgres.NewEventStore(nil, o)
		return err
	},
		bad{Name: "postgres.WithEventsTable", Opt: postgres.WithEventsTable("")},
		bad{Name: "postgres.WithEventsTable", Opt: postgres.WithEventsTable("a.b.c")},
		bad{Name: "postgres.WithPositionsTable", Opt: postgres.WithPositionsTable("s.")},
		bad{Name: "postgres.WithMaxBatch", Opt: postgres.WithMaxBatch(0)},
	)
}

// lookupCounter counts the idempotency lookups (the probe of the
// (stream_id, event_id) index) sent on a pool.
type lookupCounter struct{ n atomic.Int64 }

func (c *lookupCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (c *lookupCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if strings.Contains(d.SQL, "CROSS JOIN LATERAL") {
		c.n.Add(1)
	}
}

func (c *lookupCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *lookupCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (c *lookupCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// esTracedStore returns a store (group commit on, or off with opts) in a
// schema of its own on a pool that counts the idempotency lookups.
func esTracedStore(t *testing.T, opts ...postgres.EventStoreOption) (*postgres.EventStore, *lookupCounter) {
	t.Helper()
	_, schema := esTestPool(t) // the schema, dropped at the end
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &lookupCounter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return esNewStoreOn(t, pool, schema, opts...), c
}

// esIDs returns n events with the ids prefix-0 … prefix-(n-1).
func esIDs(prefix string, n int) (evs []event.Event) {
	for i := range n {
		evs = append(evs, eventkittest.NewEvent(prefix+"-"+strconv.Itoa(i)))
	}
	return evs
}

// esBehindHeldLock runs appendFn(0) … appendFn(n-1) from n goroutines while
// an append holds the position lock (BeginAppend), waits until each of them
// is queued for group commit or in the transaction blocked on the lock,
// commits the holder and waits for them all. It returns the store's
// counters at the moment they were all waiting.
func esBehindHeldLock(t *testing.T, s *postgres.EventStore, n int, appendFn func(i int)) postgres.AppendStats {
	t.Helper()
	ctx := context.Background()
	held, err := s.BeginAppend(ctx, "held", es.NoStream, eventkittest.NewEvent("held"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() { appendFn(i) })
	}
	deadline := time.Now().Add(30 * time.Second)
	st := s.Stats()
	for ; st.Queued+st.InFlight < n; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends did not queue behind the held lock: %+v", n, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := held.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return st
}

// TestEventStoreAppendSkipsLookup: an append of new ids is decided without
// looking its ids up (the unique index refuses a stored one); a repeat
// still finds the first result. Before, every append ran the lookup.
func TestEventStoreAppendSkipsLookup(t *testing.T) {
	ctx := context.Background()
	s, lookups := esTracedStore(t)
	first, err := s.Append(ctx, "a", es.NoStream, esIDs("a", 3)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "a", es.Exact(3), esIDs("b", 100)...); err != nil { // COPY
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "c", es.Any, esIDs("c", 2)...); err != nil {
		t.Fatal(err)
	}
	if n := lookups.n.Load(); n != 0 {
		t.Fatalf("three appends of new ids ran %d idempotency lookups; want 0", n)
	}
	// A retried append: its expected version no longer matches, so the
	// ids are looked up and the first result comes back.
	again, err := s.Append(ctx, "a", es.NoStream, esIDs("a", 3)...)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("repeat = %+v, %v; want %+v", again, err, first)
	}
	if n := lookups.n.Load(); n != 1 {
		t.Fatalf("a repeat ran %d lookups; want 1", n)
	}
}

// TestEventStoreDuplicateIDsOptimistic: an id already stored in the stream,
// sent again with es.Any (so that only the unique index sees it), is
// refused with the same error as the careful path gives, whether the rows
// go by INSERT or COPY and with or without group commit; the log keeps no
// trace of the refused append, and the same id in another stream is fine.
func TestEventStoreDuplicateIDsOptimistic(t *testing.T) {
	for _, gc := range []bool{true, false} {
		for _, n := range []int{3, 60} { // INSERT, COPY
			t.Run(fmt.Sprintf("group-commit=%v/events=%d", gc, n), func(t *testing.T) {
				ctx := context.Background()
				s, lookups := esTracedStore(t, postgres.WithGroupCommit(gc))
				if _, err := s.Append(ctx, "s", es.NoStream, esIDs("x", n)...); err != nil {
					t.Fatal(err)
				}
				dup := append(esIDs("y", n-1), eventkittest.NewEvent(fmt.Sprintf("x-%d", n-1)))
				_, err := s.Append(ctx, "s", es.Any, dup...)
				if want := fmt.Sprintf("%v: stream %q", es.ErrDuplicateEvent, "s"); !errors.Is(err, es.ErrDuplicateEvent) || err.Error() != want {
					t.Fatalf("append of a stored id = %v; want %q", err, want)
				}
				if lookups.n.Load() != 1 {
					t.Fatalf("%d lookups; want 1 (the careful pass after the index refused the id)", lookups.n.Load())
				}
				if h, err := s.Head(ctx); err != nil || h != uint64(n) {
					t.Fatalf("head after the refused append = %d, %v; want %d", h, err, n)
				}
				res, err := s.Append(ctx, "other", es.NoStream, dup...)
				if err != nil || res.Positions[0] != uint64(n)+1 {
					t.Fatalf("the same ids in another stream = %+v, %v; want positions from %d", res, err, n+1)
				}
				if got, err := s.ReadStream(ctx, "s", es.Forward, 0, 0); err != nil || len(got) != n {
					t.Fatalf("stream s holds %d events, %v; want %d", len(got), err, n)
				}
			})
		}
	}
}

// TestEventStoreGroupWithDuplicate: in a group commit, one append whose id
// is stored makes the optimistic pass fail for the whole group; the redo
// gives that append its ErrDuplicateEvent and the others their success,
// with no gap in the log.
func TestEventStoreGroupWithDuplicate(t *testing.T) {
	ctx := context.Background()
	s, _ := esTracedStore(t)
	if _, err := s.Append(ctx, "dup", es.NoStream, eventkittest.NewEvent("d0")); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	esBehindHeldLock(t, s, n, func(i int) {
		if i == n/2 {
			_, errs[i] = s.Append(ctx, "dup", es.Any, eventkittest.NewEvent("new"), eventkittest.NewEvent("d0"))
			return
		}
		_, errs[i] = s.Append(ctx, fmt.Sprintf("ok-%d", i), es.NoStream, esIDs(fmt.Sprint(i), 2)...)
	})
	for i, err := range errs {
		if i == n/2 {
			if want := fmt.Sprintf("%v: stream %q", es.ErrDuplicateEvent, "dup"); err == nil || err.Error() != want {
				t.Fatalf("the duplicate's append = %v; want %q", err, want)
			}
		} else if err != nil {
			t.Fatalf("append %d beside a duplicate: %v", i, err)
		}
	}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 2*(n-1); len(all) != want {
		t.Fatalf("log holds %d events; want %d", len(all), want)
	}
	for i, r := range all {
		if r.Position != uint64(i+1) {
			t.Fatalf("position %d at index %d: gap", r.Position, i)
		}
	}
}
