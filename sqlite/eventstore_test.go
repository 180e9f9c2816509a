package sqlite_test

import (
	"context"
	"database/sql"
	"go.uber.org/goleak"
	"path/filepath"
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
	_ "modernc.org/sqlite"
)

// esTestDB opens a fresh SQLite database file in WAL mode for one test.
func esTestDB(t testing.TB) *sql.DB {
	return sqliteOpen(t, filepath.Join(t.TempDir(), "test.db"))
}

// sqliteOpen opens the database file at path in WAL mode, closed at the end
// of t.
func sqliteOpen(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(32) // keep connections: opening one per query is slow
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func esNewStore(t testing.TB) *sqlite.EventStore {
	t.Helper()
	s := sqlite.NewEventStore(esTestDB(t), "events")
	for i := 0; i < 2; i++ { // Migrate is idempotent
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestEventStore(t *testing.T) {
	// Every subscription and connection of the suite is gone at the end.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return esNewStore(t) })
}
