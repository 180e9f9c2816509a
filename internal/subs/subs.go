// Package subs keeps a transport's live subscriptions, so that closing the
// transport closes every one of them exactly once and no subscription can
// be added after that.
package subs

import "sync"

// Registry is a set of live subscriptions. The zero value is ready to use.
type Registry[T interface {
	comparable
	Close() error
}] struct {
	mu     sync.Mutex
	live   map[T]struct{}
	closed bool
}

// Add registers s and reports true, or reports false (registering nothing)
// once CloseAll has begun; the caller then closes s itself.
func (r *Registry[T]) Add(s T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.live == nil {
		r.live = make(map[T]struct{})
	}
	r.live[s] = struct{}{}
	return true
}

// Remove forgets s (a subscription that closed on its own).
func (r *Registry[T]) Remove(s T) {
	r.mu.Lock()
	delete(r.live, s)
	r.mu.Unlock()
}

// CloseAll stops further Adds and closes every registered subscription,
// concurrently, returning when all have closed.
func (r *Registry[T]) CloseAll() {
	r.mu.Lock()
	r.closed = true
	live := make([]T, 0, len(r.live))
	for s := range r.live {
		live = append(live, s)
	}
	r.live = nil // each subscription is closed once, even if CloseAll runs again
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Close()
		}()
	}
	wg.Wait()
}
