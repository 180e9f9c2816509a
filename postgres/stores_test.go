package postgres_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
)

// The conformance suites of the small stores, each on tables in a schema
// of its own test.

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		pool, schema := esTestPool(t)
		return eventkittest.Migrated(t, postgres.NewDedupStore(pool, schema+".dedup", 0))
	})
}

func TestCheckpointStore(t *testing.T) {
	eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore {
		pool, schema := esTestPool(t)
		return eventkittest.Migrated(t, postgres.NewCheckpointStore(pool, schema+".checkpoints"))
	})
}

func TestSnapshotStore(t *testing.T) {
	eventkittest.TestSnapshotStore(t, func(t *testing.T) es.SnapshotStore {
		pool, schema := esTestPool(t)
		return eventkittest.Migrated(t, postgres.NewSnapshotStore(pool, schema+".snapshots"))
	})
}

func TestCheckpointSaveTxRollsBack(t *testing.T) {
	ctx := context.Background()
	pool, schema := esTestPool(t)
	s := eventkittest.Migrated(t, postgres.NewCheckpointStore(pool, schema+".checkpoints"))
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTx(ctx, tx, "p", 9); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "p"); err != nil || ok {
		t.Fatalf("checkpoint saved in a rolled-back transaction is visible: ok=%v err=%v", ok, err)
	}
	tx, _ = pool.Begin(ctx)
	if err := s.SaveTx(ctx, tx, "p", 9); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := s.Load(ctx, "p"); err != nil || !ok || p != 9 {
		t.Fatalf("Load after committed SaveTx = %d, %v, %v", p, ok, err)
	}
}
