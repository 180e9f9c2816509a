// Package pgqueue is the eventkit transport on PostgreSQL tables: Publish
// inserts, subscriptions claim with FOR UPDATE SKIP LOCKED and are woken by
// LISTEN/NOTIFY, with polling as the fallback. Consumer groups, per-key
// order, nack with delay, redelivery with an attempt count and persistence
// are supported (see Transport for what is guaranteed).
//
// The package is named pgqueue, not queue or transport, so that it never
// needs an alias next to github.com/eventkit/eventkit/transport or a
// program's own queue package. It does not link the replication protocol
// (package pgcdc) nor any observability library.
//
// Tests need a PostgreSQL server: EVENTKIT_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
package pgqueue
