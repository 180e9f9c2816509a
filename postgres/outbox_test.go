package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// outboxTestStore creates an outbox on its own tables, dropped at the end.
func outboxTestStore(t testing.TB, pool *pgxpool.Pool, opts ...OutboxOption) *Outbox {
	t.Helper()
	name := eventkittest.UniqueName("ekob_")
	o := outboxOpen(t, pool, append([]OutboxOption{OutboxTable(name)}, opts...)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s, %s, %s`, o.table, o.leases, o.relays, o.archive))
	})
	return o
}

// outboxOpen opens and migrates an outbox.
func outboxOpen(t testing.TB, pool *pgxpool.Pool, opts ...OutboxOption) *Outbox {
	t.Helper()
	o, err := NewOutbox(pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return o
}

// outboxTx is a business transaction with the outbox's Write bound to it.
type outboxTx struct {
	pgx.Tx
	o *Outbox
}

func (tx outboxTx) Write(ctx context.Context, topic string, events ...event.Event) error {
	return tx.o.Write(ctx, tx.Tx, topic, events...)
}

// TestOutboxStore runs the outbox-store suite with each delivered policy.
func TestOutboxStore(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, c := range []struct {
		name   string
		policy OutboxPolicy
	}{{"Delete", OutboxDelete}, {"Archive", OutboxArchive}, {"Keep", OutboxKeep}} {
		t.Run(c.name, func(t *testing.T) {
			eventkittest.TestOutboxStore(t, func(t *testing.T, partitions int) eventkittest.OutboxHarness {
				opts := []OutboxOption{OutboxPartitions(partitions), OutboxDeliveredPolicy(c.policy)}
				o := outboxTestStore(t, pool, opts...)
				return eventkittest.OutboxHarness{
					Store: o,
					Begin: func(ctx context.Context) (eventkittest.OutboxTx, error) {
						tx, err := pool.Begin(ctx)
						return outboxTx{tx, o}, err
					},
					// A restarted process: a pool of its own.
					Reopen: func(t *testing.T) eventkittest.OutboxStore {
						return outboxOpen(t, pgtest.Pool(t), append(opts, OutboxTable(o.name))...)
					},
				}
			})
		})
	}
}

// TestOutboxRefusesInvalidOptions: NewOutbox fails with
// eventkit.ErrInvalidOption, naming the option, for each invalid value
// (OutboxPartitions, OutboxRetention and OutboxDeliveredPolicy ignored them
// before).
func TestOutboxRefusesInvalidOptions(t *testing.T) {
	type bad = eventkittest.BadOption[OutboxOption]
	eventkittest.TestBadOptions(t, func(o OutboxOption) error {
		_, err := NewOutbox(nil, o)
		return err
	},
		bad{Name: "postgres.OutboxTable", Opt: OutboxTable("")},
		bad{Name: "postgres.OutboxTable", Opt: OutboxTable("a.b.c")},
		bad{Name: "postgres.OutboxPartitions", Opt: OutboxPartitions(0)},
		bad{Name: "postgres.OutboxPartitions", Opt: OutboxPartitions(-3)},
		bad{Name: "postgres.OutboxRetention", Opt: OutboxRetention(0)},
		bad{Name: "postgres.OutboxDeliveredPolicy", Opt: OutboxDeliveredPolicy(OutboxPolicy(7))},
	)
}

// The crash test: a child process runs a relay whose publisher records the
// events in a sink table, reports, and hangs before returning, so the relay
// never marks them; the parent SIGKILLs it and runs a relay of its own.

const outboxCrashEnv = "EVENTKIT_OUTBOX_CRASH_CHILD"

// outboxSinkPublisher inserts each event into a sink table (a durable
// broker stand-in shared by both processes).
type outboxSinkPublisher struct {
	pool  *pgxpool.Pool
	sink  string
	after func()
}

func (p *outboxSinkPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	for _, e := range events {
		if _, err := p.pool.Exec(ctx, `INSERT INTO `+p.sink+` (event_id, seq) VALUES ($1, $2)`, e.ID(), e.Extensions()["seq"]); err != nil {
			return err
		}
	}
	if p.after != nil {
		p.after()
	}
	return nil
}

func (p *outboxSinkPublisher) Close() error { return nil }

func TestOutboxRelayCrashChild(t *testing.T) {
	if os.Getenv(outboxCrashEnv) != "1" {
		t.Skip("helper process of TestOutboxRelayKilledBetweenPublishAndMark")
	}
	pool := pgtest.Pool(t)
	o := outboxOpen(t, pool, OutboxTable(os.Getenv("EVENTKIT_OUTBOX_TABLE")))
	pub := &outboxSinkPublisher{pool: pool, sink: os.Getenv("EVENTKIT_OUTBOX_SINK"), after: func() {
		fmt.Println("PUBLISHED")
		select {} // hang: the relay never marks; the parent kills us
	}}
	r, err := outbox.NewRelay(o, pub, outbox.WithOwner("child"), outbox.WithLeaseTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background())
}

func TestOutboxRelayKilledBetweenPublishAndMark(t *testing.T) {
	pool := pgtest.Pool(t)
	o := outboxTestStore(t, pool)
	ctx := context.Background()
	sink := pgx.Identifier{eventkittest.UniqueName("ekob_sink_")}.Sanitize()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+sink+` (n bigint GENERATED ALWAYS AS IDENTITY, event_id text NOT NULL, seq int)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+sink) })
	const n = 20
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = eventkittest.OutboxEvent(fmt.Sprintf("crash-%d", i), "k", i)
		}
		return o.Write(ctx, tx, "ob.crash", evs...)
	}); err != nil {
		t.Fatal(err)
	}

	child := eventkittest.StartChild(t, "^TestOutboxRelayCrashChild$", outboxCrashEnv+"=1", "EVENTKIT_OUTBOX_TABLE="+o.name,
		"EVENTKIT_OUTBOX_SINK="+sink, "EVENTKIT_POSTGRES_URL="+pgtest.URL(t))
	child.WaitLine(t, "PUBLISHED", 60*time.Second)
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}

	var sunk int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+sink).Scan(&sunk); err != nil {
		t.Fatal(err)
	}
	if sunk != n {
		t.Fatalf("child published %d events, want %d", sunk, n)
	}
	if p, _ := o.Pending(ctx); p != n {
		t.Fatalf("after the kill, %d rows pending, want %d (published, never marked)", p, n)
	}

	// A new relay takes the partitions over once the dead one's lease
	// expires and publishes the same events again, with the same ids.
	r, err := outbox.NewRelay(o, &outboxSinkPublisher{pool: pool, sink: sink}, outbox.WithOwner("survivor"),
		outbox.WithLeaseTTL(2*time.Second), outbox.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	eventkittest.RunRelay(t, r)
	eventkittest.WaitFor(t, 60*time.Second, "every row delivered after the crash", func() bool {
		p, err := o.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p == 0
	})
	rows, err := pool.Query(ctx, `SELECT event_id, seq FROM `+sink+` ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		ID  string
		Seq int
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[delivery])
	if err != nil {
		t.Fatal(err)
	}
	// Downstream dedup by event id: each event exactly once, in order.
	times := map[string]int{}
	next := 0
	for _, d := range all {
		times[d.ID]++
		if times[d.ID] > 1 {
			continue
		}
		if d.Seq != next {
			t.Fatalf("after dedup, seq %d came where %d was expected", d.Seq, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("after dedup, %d distinct events, want %d", next, n)
	}
	for i := range n {
		if c := times[fmt.Sprintf("crash-%d", i)]; c != 2 {
			t.Errorf("crash-%d delivered %d times; want 2 (once by the killed relay, once again with the same id)", i, c)
		}
	}
}
