package postgres_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
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
	opts = append([]postgres.EventStoreOption{postgres.WithEventsTable(schema + ".events"), postgres.WithPositionsTable(schema + ".positions")}, opts...)
	s := postgres.NewEventStore(pool, opts...)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	return s
}

func TestEventStore(t *testing.T) {
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return esNewStore(t) })
}

func TestEventStoreWithoutGroupCommit(t *testing.T) {
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return esNewStore(t, postgres.WithGroupCommit(false)) })
}
