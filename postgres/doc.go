// Package postgres holds eventkit's stores on PostgreSQL, on pgx v5: the
// event store and snapshot store (package es), the outbox store and its
// relay source (package outbox), and the dedup and checkpoint stores.
// Importing it pulls in pgx, and neither the replication protocol nor any
// observability library.
//
// The other PostgreSQL capabilities have their own packages, so that a
// program links only what it uses:
//   - github.com/eventkit/eventkit/postgres/pgqueue: the queue transport
//     (FOR UPDATE SKIP LOCKED with LISTEN/NOTIFY);
//   - github.com/eventkit/eventkit/postgres/pgcdc: change data capture over
//     logical replication (pgoutput).
//
// Tests need a PostgreSQL server: EVENTKIT_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
package postgres
