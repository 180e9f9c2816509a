package pipepg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/eventkit/eventkit/pipeline/pipepg"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/postgres/pgcdc"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func dsn(t *testing.T) string {
	return eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
}

// flaky fails the first delivery of each event that fail matches, and
// records the ids of the events that passed.
type flaky struct {
	fail   func(e event.Event) bool
	mu     sync.Mutex
	failed []string
	got    []string
}

func (f *flaky) Process(_ context.Context, e event.Event) ([]event.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail(e) && !slices.Contains(f.failed, e.ID()) {
		f.failed = append(f.failed, e.ID())
		return nil, errors.New("enrichment service down")
	}
	f.got = append(f.got, e.ID())
	return nil, nil
}

func (f *flaky) failures() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.failed)
}

func (f *flaky) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// run loads def with the PostgreSQL input kinds and a "record" function
// (a split into nothing, that is a sink by way of a discard output), runs
// it until the end of the test, and returns the recorder.
func run(t *testing.T, def string, rec *flaky) {
	t.Helper()
	bus := memory.New()
	t.Cleanup(func() { _ = bus.Close() })
	l := &pipeconf.Loader{
		Transports: pipeconf.Fixed{Sub: bus, Pub: bus},
		Inputs:     map[string]pipeconf.InputKind{"cdc": pipepg.CDCKind, "outbox": pipepg.OutboxKind},
		Functions:  map[string]pipeconf.Function{"record": rec.Process},
	}
	loaded, err := l.Load(context.Background(), "p.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := loaded.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := loaded.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
		_ = loaded.Close()
	})
}

// waitIDs waits until rec holds every id of want (duplicates allowed:
// a failure makes the producer send again).
func waitIDs(t *testing.T, rec *flaky, want ...string) {
	t.Helper()
	eventkittest.WaitFor(t, 60*time.Second, fmt.Sprintf("ids %v", want), func() bool {
		got := rec.ids()
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

// The outbox as an input: committed rows go through the pipeline; a row
// whose event fails in a stage is not marked delivered and is published
// again by the relay, so it reaches the output after all.
func TestOutboxInput(t *testing.T) {
	url := dsn(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	table := eventkittest.UniqueName("pipe_outbox")
	store, err := postgres.NewOutbox(pool, postgres.OutboxTable(table), postgres.OutboxPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range []string{"", "_leases", "_relays"} {
			_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table+s)
		}
	})
	rec := &flaky{fail: func(e event.Event) bool { return e.ID() == "o2" }}
	run(t, fmt.Sprintf(`
input:
  outbox: {dsn: %q, table: %s, partitions: 2, poll: 50ms}
processors:
  - name: record
    split: {function: record}
outputs:
  - {url: memory://, topic: unused}
`, url, table), rec)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return store.Write(ctx, tx, "orders", eventkittest.OutboxEvent("o1", "k1", 1),
			eventkittest.OutboxEvent("o2", "k2", 1), eventkittest.OutboxEvent("o3", "k1", 2))
	})
	if err != nil {
		t.Fatal(err)
	}
	waitIDs(t, rec, "o1", "o2", "o3")
	if f := rec.failures(); !slices.Equal(f, []string{"o2"}) {
		t.Fatalf("failed deliveries %v, want [o2]", f)
	}
	eventkittest.WaitFor(t, 30*time.Second, "every row marked delivered", func() bool {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE delivered_at IS NULL").Scan(&n)
		if err != nil {
			err = pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		}
		return err == nil && n == 0
	})
}

// The CDC source as an input: row changes reach the stages as Debezium
// change events; a change whose event fails is sent again (the slot is
// not confirmed past it).
func TestCDCInput(t *testing.T) {
	url := dsn(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := eventkittest.UniqueName("pipecdc")
	if _, err := conn.Exec(ctx, "CREATE TABLE "+name+" (id int PRIMARY KEY, note text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for ctx.Err() == nil && pgcdc.DropSlot(ctx, url, "eventkit_"+name) != nil {
			time.Sleep(100 * time.Millisecond)
		}
		_ = pgcdc.DropPublication(ctx, url, "eventkit_"+name)
		_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+name)
	})
	rec := &flaky{fail: func(e event.Event) bool { return bytes.Contains(e.Data(), []byte("fail-me")) }}
	run(t, fmt.Sprintf(`
input:
  cdc: {dsn: %q, name: %s, tables: [public.%s], snapshot: false, heartbeat: 200ms}
  types: [%s]
processors:
  - name: record
    split: {function: record}
    consumes: [%s]
outputs:
  - {url: memory://, topic: unused}
`, url, name, name, pgcdc.ChangeType, pgcdc.ChangeType), rec)
	// The slot is created when the source connects: insert until a first
	// change arrives, then the rows that count.
	eventkittest.WaitFor(t, 60*time.Second, "the first change", func() bool {
		_, _ = conn.Exec(ctx, "INSERT INTO "+name+" VALUES (0, 'probe') ON CONFLICT (id) DO UPDATE SET note = 'probe again'")
		return len(rec.ids()) > 0
	})
	if _, err := conn.Exec(ctx, "INSERT INTO "+name+" VALUES (1, 'a'), (2, 'fail-me'), (3, 'c')"); err != nil {
		t.Fatal(err)
	}
	eventkittest.WaitFor(t, 60*time.Second, "the failed change", func() bool { return len(rec.failures()) == 1 })
	failed := rec.failures()[0]
	waitIDs(t, rec, failed)
	// Its neighbours of the same transaction came through too (again).
	tx := failed[:strings.LastIndex(failed, ":")]
	waitIDs(t, rec, tx+":0", tx+":1", tx+":2")
}
