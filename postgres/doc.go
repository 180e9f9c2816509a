// Package postgres holds everything eventkit does with PostgreSQL, on pgx v5:
// the event store, the outbox store and its relay source, the queue
// transport (FOR UPDATE SKIP LOCKED with LISTEN/NOTIFY), dedup and
// checkpoint stores, and change data capture over logical replication
// (pgoutput). Importing it pulls in pgx and nothing else.
//
// Tests need a PostgreSQL server: EVENTKIT_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
package postgres
