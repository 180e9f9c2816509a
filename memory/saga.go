package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/topic"
)

// SagaStore is an in-process saga.Store: instances live in memory, and the
// messages their steps emit go to an Outbox (SagaStore.Outbox) in the same
// critical section as the state change; run an outbox.Relay on it to
// publish them. It keeps nothing across restarts. It is safe for
// concurrent use.
type SagaStore struct {
	mu     sync.Mutex
	recs   map[[2]string]saga.Record
	seen   map[[2]string]map[string]bool // handled event ids by instance
	outbox *Outbox
}

// NewSagaStore returns an empty store with its own outbox.
func NewSagaStore() *SagaStore {
	return &SagaStore{recs: map[[2]string]saga.Record{}, seen: map[[2]string]map[string]bool{}, outbox: NewOutbox()}
}

// Outbox returns the outbox that receives the messages of saga steps.
func (s *SagaStore) Outbox() *Outbox { return s.outbox }

func cloneSagaRecord(r saga.Record) saga.Record {
	r.State = slices.Clone(r.State)
	r.Done = slices.Clone(r.Done)
	r.History = slices.Clone(r.History)
	return r
}

// Load implements saga.Store.
func (s *SagaStore) Load(_ context.Context, name, id string) (saga.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[[2]string{name, id}]
	if !ok {
		return saga.Record{}, fmt.Errorf("memory: saga %s %q: %w", name, id, saga.ErrNotFound)
	}
	return cloneSagaRecord(r), nil
}

// Seen implements saga.Store.
func (s *SagaStore) Seen(_ context.Context, name, id, eventID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[[2]string{name, id}][eventID], nil
}

// Save implements saga.Store.
func (s *SagaStore) Save(_ context.Context, c saga.Change) error {
	for _, m := range c.Outgoing {
		if err := checkOutboxEvents(m.Topic, []event.Event{m.Event}); err != nil {
			return err
		}
	}
	r := c.Record
	key := [2]string{r.Saga, r.ID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.recs[key]; r.Version == 0 || ok && cur.Version != r.Version-1 || !ok && r.Version != 1 {
		return fmt.Errorf("memory: saga %s %q version %d: %w", r.Saga, r.ID, r.Version, saga.ErrConflict)
	}
	if c.EventID != "" && s.seen[key][c.EventID] {
		return fmt.Errorf("memory: saga %s %q event %q: %w", r.Saga, r.ID, c.EventID, saga.ErrConflict)
	}
	switch {
	case r.Status.Final(): // a final instance handles no event: forget their ids
		delete(s.seen, key)
	case c.EventID != "" && s.seen[key] == nil:
		s.seen[key] = map[string]bool{c.EventID: true}
	case c.EventID != "":
		s.seen[key][c.EventID] = true
	}
	s.recs[key] = cloneSagaRecord(r)
	s.outbox.mu.Lock()
	defer s.outbox.mu.Unlock()
	for _, m := range c.Outgoing {
		s.outbox.add(m.Topic, []event.Event{m.Event})
	}
	return nil
}

// Due implements saga.Store.
func (s *SagaStore) Due(_ context.Context, name string, now time.Time, limit int) ([]string, error) {
	s.mu.Lock()
	var due []saga.Record
	for k, r := range s.recs {
		if k[0] == name && !r.Wake.IsZero() && !r.Wake.After(now) {
			due = append(due, r)
		}
	}
	s.mu.Unlock()
	sort.Slice(due, func(i, j int) bool {
		if !due[i].Wake.Equal(due[j].Wake) {
			return due[i].Wake.Before(due[j].Wake)
		}
		return due[i].ID < due[j].ID
	})
	ids := make([]string, 0, min(len(due), limit))
	for _, r := range due[:min(len(due), limit)] {
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// List implements saga.Store.
func (s *SagaStore) List(_ context.Context, name string, f saga.Filter) ([]saga.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	s.mu.Lock()
	var out []saga.Record
	for k, r := range s.recs {
		if k[0] == name && k[1] > f.After && (f.Status == "" || r.Status == f.Status) {
			out = append(out, cloneSagaRecord(r))
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out[:min(len(out), limit)], nil
}

// checkOutboxEvents validates what an Outbox is given to write.
func checkOutboxEvents(topicName string, events []event.Event) error {
	if err := topic.ValidateName(topicName); err != nil {
		return fmt.Errorf("memory: outbox write: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("memory: outbox write: %w", err)
	}
	return nil
}
