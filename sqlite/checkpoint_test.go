package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
)

// TestProjectionCheckpointInTransaction: a projection that writes its read
// model and its checkpoint in one transaction counts every event exactly
// once across failures before and after its commits.
func TestProjectionCheckpointInTransaction(t *testing.T) {
	ctx := context.Background()
	db := esTestDB(t)
	store := sqlite.NewEventStore(db, "")
	cps := sqlite.NewCheckpointStore(db, "")
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cps.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE counts (stream TEXT PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const N = 30
	for i := 0; i < N; i++ {
		if _, err := store.Append(ctx, fmt.Sprintf("s%d", i%3), es.Any, eventkittest.NewEvent(fmt.Sprint("e", i))); err != nil {
			t.Fatal(err)
		}
	}
	errCrash := errors.New("crash")
	var calls int
	handler := func(ctx context.Context, r es.RecordedEvent) error {
		calls++
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		if _, err := tx.ExecContext(ctx, `INSERT INTO counts (stream, n) VALUES (?, 1) ON CONFLICT (stream) DO UPDATE SET n = n + 1`, r.StreamID); err != nil {
			return err
		}
		if err := cps.SaveTx(ctx, tx, "counts", r.Position); err != nil {
			return err
		}
		switch {
		case calls%7 == 0: // fails before its commit: rolled back, handled again
			return errCrash
		case calls%5 == 0: // fails after its commit: the checkpoint moved with it
			if err := tx.Commit(); err != nil {
				return err
			}
			return errCrash
		}
		return tx.Commit()
	}
	for restarts := 0; ; restarts++ {
		if restarts > 100 {
			t.Fatal("projection does not finish")
		}
		p, err := es.NewProjector("counts", store, cps, handler, es.WithHandlerCheckpoint())
		if err != nil {
			t.Fatal(err)
		}
		err = p.CatchUp(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
	}
	var total int
	if err := db.QueryRowContext(ctx, `SELECT SUM(n) FROM counts`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != N {
		t.Fatalf("read model counted %d events; %d were appended (handler ran %d times)", total, N, calls)
	}
	if cp, _, _ := cps.Load(ctx, "counts"); cp != N {
		t.Fatalf("checkpoint %d; want %d", cp, N)
	}
}
