package memory

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Dedup store defaults.
const (
	DefaultDedupCapacity = 100_000
	DefaultDedupTTL      = 24 * time.Hour
)

// DedupOption configures a DedupStore.
type DedupOption func(*DedupStore)

// DedupCapacity bounds the number of keys the store holds (default
// DefaultDedupCapacity). When it is full, marking a new key evicts the
// oldest marked one.
func DedupCapacity(n int) DedupOption { return func(s *DedupStore) { s.capacity = n } }

// DedupDefaultTTL sets the retention of a key marked with ttl <= 0 (default
// DefaultDedupTTL).
func DedupDefaultTTL(d time.Duration) DedupOption { return func(s *DedupStore) { s.ttl = d } }

// DedupStore is an in-memory dedup.Store: bounded (the oldest
// keys are evicted first when it is full), with a time to live per key. It
// keeps nothing across restarts, and is shared by nothing but the process:
// use a database store when several processes consume one group. It is
// safe for concurrent use and starts no goroutine (expired keys are removed
// as the store is used).
type DedupStore struct {
	capacity int
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	keys  map[string]*list.Element
	order *list.List // of *dedupEntry, oldest mark first
}

type dedupEntry struct {
	key     string
	expires time.Time
}

// NewDedupStore returns an empty store.
func NewDedupStore(opts ...DedupOption) *DedupStore {
	s := &DedupStore{capacity: DefaultDedupCapacity, ttl: DefaultDedupTTL, now: time.Now,
		keys: make(map[string]*list.Element), order: list.New()}
	for _, o := range opts {
		o(s)
	}
	if s.capacity < 1 {
		s.capacity = 1
	}
	if s.ttl <= 0 {
		s.ttl = DefaultDedupTTL
	}
	return s
}

// Seen reports whether key was marked and has not expired.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.keys[key]
	if !ok {
		return false, nil
	}
	if !now.Before(el.Value.(*dedupEntry).expires) {
		s.remove(el)
		return false, nil
	}
	return true, nil
}

// Mark records key for ttl (ttl <= 0: the default TTL) and reports whether
// it was new; a key already marked and not expired keeps its record.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ttl <= 0 {
		ttl = s.ttl
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.keys[key]; ok {
		if now.Before(el.Value.(*dedupEntry).expires) {
			return false, nil
		}
		s.remove(el)
	}
	s.sweep(now, 16)
	for len(s.keys) >= s.capacity {
		s.remove(s.order.Front())
	}
	s.keys[key] = s.order.PushBack(&dedupEntry{key: key, expires: now.Add(ttl)})
	return true, nil
}

// Len returns the number of keys held (expired ones not yet removed
// included).
func (s *DedupStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// sweep removes up to n expired keys from the oldest end.
func (s *DedupStore) sweep(now time.Time, n int) {
	for el := s.order.Front(); el != nil && n > 0; n-- {
		nextEl := el.Next()
		if !now.Before(el.Value.(*dedupEntry).expires) {
			s.remove(el)
		}
		el = nextEl
	}
}

func (s *DedupStore) remove(el *list.Element) {
	delete(s.keys, el.Value.(*dedupEntry).key)
	s.order.Remove(el)
}
