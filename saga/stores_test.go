package saga_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite"
)

// A backend is a saga store technology for the conformance and crash
// tests: place returns a new, empty place for a store (an SQLite file, a
// PostgreSQL schema), and open opens the store there, from any process.
type backend struct {
	name  string
	place func(t testing.TB) string
	open  func(t testing.TB, place string) (saga.Store, outbox.Store)
}

var backends = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "saga.db") }, openSQLite},
	{"postgres", postgresSchema, openPostgres},
}

func openSQLite(t testing.TB, path string) (saga.Store, outbox.Store) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxIdleConns(16)
	ob, err := sqlite.NewOutbox(db, sqlite.OutboxPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	store := sqlite.NewSagaStore(db, ob, "")
	for range 2 { // Migrate is idempotent
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return store, store.Outbox()
}

func postgresPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	pool, err := pgxpool.New(context.Background(), url)
	if err == nil {
		err = pool.Ping(context.Background())
	}
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// postgresSchema creates a schema that the test's cleanup drops.
func postgresSchema(t testing.TB) string {
	pool := postgresPool(t)
	schema := eventkittest.UniqueName("eksaga_")
	if _, err := pool.Exec(context.Background(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	return schema
}

func openPostgres(t testing.TB, schema string) (saga.Store, outbox.Store) {
	t.Helper()
	pool := postgresPool(t)
	ob, err := postgres.NewOutbox(pool, postgres.OutboxTable(schema+".outbox"), postgres.OutboxPartitions(4))
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.NewSagaStore(pool, ob, schema+".sagas")
	for range 2 { // Migrate is idempotent
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return store, ob
}

func TestStoreConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		eventkittest.TestSagaStore(t, func(t *testing.T) (saga.Store, outbox.Store) {
			s := memory.NewSagaStore()
			return s, s.Outbox()
		})
	})
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			eventkittest.TestSagaStore(t, func(t *testing.T) (saga.Store, outbox.Store) { return b.open(t, b.place(t)) })
		})
	}
}
