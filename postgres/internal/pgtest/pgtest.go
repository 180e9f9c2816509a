// Package pgtest connects the tests of the PostgreSQL packages to their
// server: EVENTKIT_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). Only tests
// import it.
package pgtest

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URL returns the server's address; the test is skipped (failed with
// CI=true) when nothing answers there.
func URL(t testing.TB) string {
	return eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
}

// Pool connects to the server (as URL) and closes the pool at the end of t.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(context.Background()); err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", url, err)
	}
	return pool
}
