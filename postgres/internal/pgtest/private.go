package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Private is a PostgreSQL server of one test's own (initdb and postgres
// from the installed PostgreSQL, in a temporary directory, on a free
// port), with wal_level=logical: for the tests that restart the server,
// which must not restart the shared one. It runs as the user postgres when
// the test runs as root.
type Private struct {
	*eventkittest.ServerProcess
}

// StartPrivate starts a private server and stops it at the end of t. The
// test skips (fails under CI=true) when PostgreSQL is not installed.
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	bin := binDir()
	srv := eventkittest.StartServerProcess(t, eventkittest.ServerCommand{
		Program: filepath.Join(bin, "postgres"),
		Init: func(dir string) []string {
			return []string{filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
				"--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"}
		},
		Args: func(port int, dir string) []string {
			return []string{"-D", filepath.Join(dir, "data"), "-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
				"-c", "wal_level=logical", "-c", "max_replication_slots=20", "-c", "max_wal_senders=20",
				"-c", "fsync=off", "-c", "full_page_writes=off"}
		},
		User: "postgres",
		// SIGINT is PostgreSQL's fast shutdown; SIGTERM waits for every client.
		Stop: syscall.SIGINT,
		Ready: func(ctx context.Context, addr string) error {
			conn, err := pgx.Connect(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable")
			if err != nil {
				return err
			}
			return conn.Close(ctx)
		},
	})
	return &Private{srv}
}

// URL returns the server's connection string, as user postgres.
func (p *Private) URL() string {
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", p.Addr())
}

// Pool connects to the server and closes the pool at the end of t.
func (p *Private) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), p.URL())
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// binDir returns the directory of the newest installed PostgreSQL's
// programs (Debian's /usr/lib/postgresql/N/bin), or "" to look them up in
// PATH.
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}
