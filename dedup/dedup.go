// Package dedup holds the interface that deduplication stores implement,
// so that a store (memory, redis, postgres, sqlite, nats) and the code that
// uses one (middleware.Dedup) share it without importing each other. It
// imports nothing but the standard library: depending on it costs nothing.
//
// A Store's guarantees are those of eventkittest.TestDedupStore, which
// every store in this module passes.
package dedup

import (
	"context"
	"time"
)

// Store records the keys of events that were handled successfully, so that
// a redelivered duplicate can be skipped (middleware.Dedup). It is safe for
// concurrent use.
type Store interface {
	// Seen reports whether key was marked and has not expired.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark records key for ttl (ttl <= 0: the store's default retention).
	// It reports whether the key was new (false: it was already marked and
	// not expired; the existing record is kept).
	Mark(ctx context.Context, key string, ttl time.Duration) (bool, error)
}
