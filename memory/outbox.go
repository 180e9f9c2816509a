package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/outbox"
)

// Outbox is an in-process outbox.Store with one partition, for tests and
// for stores of this package (SagaStore writes the messages of saga steps
// into one). It keeps nothing across restarts. Delivered records are
// deleted. It is safe for concurrent use.
type Outbox struct {
	mu      sync.Mutex
	next    int64
	pending []outbox.Record
	owner   string
	until   time.Time
}

var _ outbox.Store = (*Outbox)(nil)

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox { return &Outbox{} }

// Write adds events, to be published to topicName. The events are
// validated first; none is written if one is invalid.
func (o *Outbox) Write(_ context.Context, topicName string, events ...event.Event) error {
	if err := checkOutboxEvents(topicName, events); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.add(topicName, events)
	return nil
}

// add appends records; o.mu is held.
func (o *Outbox) add(topicName string, events []event.Event) {
	for _, e := range events {
		o.next++
		o.pending = append(o.pending, outbox.Record{ID: o.next, Topic: topicName, Event: e.Clone()})
	}
}

// Pending returns the records not delivered yet, in order.
func (o *Outbox) Pending() []outbox.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.pending)
}

// Partitions implements outbox.Store: 1.
func (o *Outbox) Partitions() int { return 1 }

// Claim implements outbox.Store: one relay at a time holds the partition.
func (o *Outbox) Claim(_ context.Context, owner string, ttl time.Duration) ([]int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.owner != owner && o.until.After(now) {
		return nil, nil
	}
	o.owner, o.until = owner, now.Add(ttl)
	return []int{0}, nil
}

// Release implements outbox.Store.
func (o *Outbox) Release(_ context.Context, owner string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owner == owner {
		o.owner, o.until = "", time.Time{}
	}
	return nil
}

// Fetch implements outbox.Store.
func (o *Outbox) Fetch(_ context.Context, cursors []outbox.Cursor, limit int) ([]outbox.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []outbox.Record
	for _, c := range cursors {
		if c.Partition != 0 {
			continue
		}
		for _, r := range o.pending {
			if r.ID > c.After && len(out) < limit {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// MarkDelivered implements outbox.Store.
func (o *Outbox) MarkDelivered(_ context.Context, owner string, records []outbox.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owner != owner || !o.until.After(time.Now()) {
		return fmt.Errorf("memory: outbox mark: %w", outbox.ErrLeaseLost)
	}
	done := make(map[int64]bool, len(records))
	for _, r := range records {
		done[r.ID] = true
	}
	o.pending = slices.DeleteFunc(o.pending, func(r outbox.Record) bool { return done[r.ID] })
	return nil
}
