package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/eventkit/eventkit/dedup"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultDedupTTL is how long a DedupStore keeps a key marked with ttl <= 0.
const DefaultDedupTTL = 24 * time.Hour

// DedupStore is a dedup.Store on Redis: each key is a Redis key
// (prefix + key) set with SET NX and an expiry, so that exactly one of
// concurrent Marks of a key wins, across processes.
type DedupStore struct {
	client     goredis.UniversalClient
	prefix     string
	defaultTTL time.Duration
}

// DedupOption configures a DedupStore.
type DedupOption func(*DedupStore)

// WithDedupPrefix sets the prefix of the store's keys (default
// "eventkit:dedup:").
func WithDedupPrefix(p string) DedupOption { return func(s *DedupStore) { s.prefix = p } }

// WithDedupTTL sets the retention of keys marked with ttl <= 0 (default 24h).
func WithDedupTTL(d time.Duration) DedupOption {
	return func(s *DedupStore) {
		if d > 0 {
			s.defaultTTL = d
		}
	}
}

// NewDedupStore returns a dedup store on client.
func NewDedupStore(client goredis.UniversalClient, opts ...DedupOption) *DedupStore {
	s := &DedupStore{client: client, prefix: "eventkit:dedup:", defaultTTL: DefaultDedupTTL}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Seen reports whether key is marked and not expired.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	n, err := s.client.Exists(ctx, s.prefix+key).Result()
	if err != nil {
		return false, fmt.Errorf("redis: dedup seen: %w", err)
	}
	return n == 1, nil
}

// Mark records key for ttl (ttl <= 0: the default retention) with SET NX,
// and reports whether it was new.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = s.defaultTTL
	}
	ok, err := s.client.SetNX(ctx, s.prefix+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis: dedup mark: %w", err)
	}
	return ok, nil
}

var _ dedup.Store = (*DedupStore)(nil)
