// Package sqlite holds eventkit's stores on SQLite (modernc.org/sqlite, pure
// Go, no cgo) for the embedded default: the event store, the outbox store,
// and dedup and checkpoint stores. It works on a *sql.DB that the caller
// opens with the "sqlite" driver.
//
// This package does not import the driver. The program registers it by
// importing modernc.org/sqlite for its side effect; without that import,
// sql.Open("sqlite", ...) fails with `sql: unknown driver "sqlite"`:
//
//	import _ "modernc.org/sqlite"
//
//	db, err := sql.Open("sqlite", "file:events.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
package sqlite
