// Package es is eventkit's event sourcing: aggregates, repositories with
// optimistic concurrency, the EventStore interface, the event type
// registry, upcasters, snapshots and projections with checkpoints. It
// imports no driver; stores live in the memory, sqlite and postgres
// packages and pass eventkittest.TestEventStore.
package es
