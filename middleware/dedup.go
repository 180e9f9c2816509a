package middleware

import (
	"context"
	"time"
)

// DedupStore records the keys of events that were handled successfully, so
// that the Dedup middleware can skip a redelivered duplicate. Stores live in
// the technology packages (memory, redis, postgres, sqlite, nats) and pass
// eventkittest.TestDedupStore.
type DedupStore interface {
	// Seen reports whether key was marked and has not expired.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark records key for ttl (ttl <= 0: the store's default retention).
	// It reports whether the key was new (false: it was already marked and
	// not expired; the existing record is kept).
	Mark(ctx context.Context, key string, ttl time.Duration) (bool, error)
}
