package es

import (
	"context"
	"sync"
	"time"
)

// Notifier wakes the waiters of a store when it commits an append. The zero
// value is ready to use; it is safe for concurrent use.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that is closed at the next Notify.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Notify wakes every waiter.
func (n *Notifier) Notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// ReadAllFunc reads the global log (EventStore.ReadAll).
type ReadAllFunc func(ctx context.Context, after uint64, limit int) ([]RecordedEvent, error)

// PollSubscribe is the subscription every eventkit store uses: it reads the
// global log after position after in batches, delivers the events that pass
// the filter, and when it has caught up waits for a wake-up from wake (may
// be nil) or cfg.PollInterval before reading again. It is correct for any
// store whose positions become visible in order (a reader never sees p+k
// before p when both commit), which every eventkit store guarantees.
func PollSubscribe(ctx context.Context, read ReadAllFunc, wake *Notifier, after uint64, cfg SubscribeConfig) Subscription {
	ctx, cancel := context.WithCancel(ctx)
	s := &pollSub{
		ch:     make(chan RecordedEvent, cfg.Buffer),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go s.run(ctx, read, wake, after, cfg)
	return s
}

type pollSub struct {
	ch     chan RecordedEvent
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (s *pollSub) Events() <-chan RecordedEvent { return s.ch }

func (s *pollSub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *pollSub) Close() error {
	s.cancel()
	<-s.done
	return nil
}

func (s *pollSub) run(ctx context.Context, read ReadAllFunc, wake *Notifier, after uint64, cfg SubscribeConfig) {
	defer close(s.done)
	defer close(s.ch)
	timer := time.NewTimer(cfg.PollInterval)
	defer timer.Stop()
	for {
		var woken <-chan struct{}
		if wake != nil {
			woken = wake.Wait() // before the read, so no wake-up is missed
		}
		batch, err := read(ctx, after, cfg.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		for i := range batch {
			r := batch[i]
			after = r.Position
			if !cfg.Filter.Match(&r) {
				continue
			}
			select {
			case s.ch <- r:
			case <-ctx.Done():
				return
			}
		}
		if len(batch) >= cfg.BatchSize {
			continue
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(cfg.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-timer.C:
		}
	}
}
