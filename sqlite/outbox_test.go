package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
)

// outboxTx is a business transaction with the outbox's Write bound to it.
type outboxTx struct {
	tx *sql.Tx
	o  *sqlite.Outbox
}

func (t outboxTx) Write(ctx context.Context, topic string, events ...event.Event) error {
	return t.o.Write(ctx, t.tx, topic, events...)
}

func (t outboxTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t outboxTx) Rollback(context.Context) error { return t.tx.Rollback() }

// outboxOpen opens and migrates (twice: it is idempotent) the outbox of db.
func outboxOpen(t *testing.T, db *sql.DB, partitions int) *sqlite.Outbox {
	t.Helper()
	o, err := sqlite.NewOutbox(db, sqlite.OutboxPartitions(partitions))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := o.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func TestOutboxStore(t *testing.T) {
	eventkittest.TestOutboxStore(t, func(t *testing.T, partitions int) eventkittest.OutboxHarness {
		path := filepath.Join(t.TempDir(), "outbox.db")
		db := sqliteOpen(t, path)
		o := outboxOpen(t, db, partitions)
		return eventkittest.OutboxHarness{
			Store: o,
			Begin: func(ctx context.Context) (eventkittest.OutboxTx, error) {
				tx, err := db.BeginTx(ctx, nil)
				return outboxTx{tx, o}, err
			},
			// A restarted process: a database handle of its own on the file.
			Reopen: func(t *testing.T) eventkittest.OutboxStore { return outboxOpen(t, sqliteOpen(t, path), partitions) },
		}
	})
}

// TestOutboxRefusesInvalidOptions: NewOutbox fails with
// eventkit.ErrInvalidOption, naming the option (an empty table name and a
// partition count below 1 were ignored before).
func TestOutboxRefusesInvalidOptions(t *testing.T) {
	type bad = eventkittest.BadOption[sqlite.OutboxOption]
	eventkittest.TestBadOptions(t, func(o sqlite.OutboxOption) error {
		_, err := sqlite.NewOutbox(nil, o)
		return err
	},
		bad{Name: "sqlite.OutboxTable", Opt: sqlite.OutboxTable("")},
		bad{Name: "sqlite.OutboxPartitions", Opt: sqlite.OutboxPartitions(0)},
		bad{Name: "sqlite.OutboxPartitions", Opt: sqlite.OutboxPartitions(-1)},
	)
}

// TestOutboxPartitionsFixedAtCreation: the partitions are those the tables
// were created with; a later Migrate with another number keeps them.
func TestOutboxPartitionsFixedAtCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	first := outboxOpen(t, sqliteOpen(t, path), 3)
	if got := first.Partitions(); got != 3 {
		t.Fatalf("new outbox has %d partitions; want 3", got)
	}
	again := outboxOpen(t, sqliteOpen(t, path), 5)
	if got := again.Partitions(); got != 3 {
		t.Fatalf("outbox migrated again with 5 has %d partitions; want the 3 it was created with", got)
	}
	held, err := again.Claim(context.Background(), "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, []int{0, 1, 2}) {
		t.Fatalf("the only relay holds %v; want [0 1 2]", held)
	}
}
