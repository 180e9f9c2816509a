// Package sqlite holds eventkit's stores on SQLite (modernc.org/sqlite, pure
// Go, no cgo) for the embedded default: the event store, the outbox store,
// and dedup and checkpoint stores. It works on a *sql.DB that the caller
// opens with the "sqlite" driver.
package sqlite
