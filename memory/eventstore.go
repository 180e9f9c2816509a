package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
)

// EventStore is an in-memory es.EventStore: the reference implementation
// of the event store guarantees, for tests and single-process programs.
// Appends are serialised by one write lock, which is also what allocates
// global positions, so positions are gapless and become visible in order.
// It keeps everything in memory: nothing outlives the process.
type EventStore struct {
	writeMu sync.Mutex // held by one append (or pending append) at a time

	mu      sync.RWMutex
	log     []es.RecordedEvent
	streams map[string][]uint64          // stream -> positions (index+1 into log)
	ids     map[string]map[string]uint64 // stream -> event id -> position
	notify  es.Notifier
	now     func() time.Time
}

var (
	_ es.EventStore = (*EventStore)(nil)
	_ es.TxAppender = (*EventStore)(nil)
)

// NewEventStore returns an empty store.
func NewEventStore() *EventStore {
	return &EventStore{streams: map[string][]uint64{}, ids: map[string]map[string]uint64{}, now: time.Now}
}

// Append implements es.EventStore.
func (s *EventStore) Append(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.AppendResult, error) {
	p, err := s.BeginAppend(ctx, stream, expected, events...)
	if err != nil {
		return es.AppendResult{}, err
	}
	return p.Commit(ctx)
}

// BeginAppend implements es.TxAppender: the append holds the store's
// write lock until Commit or Rollback, so every other append waits.
func (s *EventStore) BeginAppend(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.PendingAppend, error) {
	if err := es.ValidateAppend(stream, events); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	s.mu.RLock()
	current := uint64(len(s.streams[stream]))
	var existing map[string][2]uint64
	if ids := s.ids[stream]; ids != nil {
		for i := range events {
			if pos, ok := ids[events[i].ID()]; ok {
				if existing == nil {
					existing = map[string][2]uint64{}
				}
				existing[events[i].ID()] = [2]uint64{s.log[pos-1].Version, pos}
			}
		}
	}
	next := uint64(len(s.log)) + 1
	s.mu.RUnlock()
	res, write, err := es.CheckAppend(stream, expected, current, events, existing)
	if err != nil || !write {
		s.writeMu.Unlock()
		if err != nil {
			return nil, err
		}
		return &esMemPending{s: s, res: res, done: true}, nil
	}
	now := s.now().UTC()
	recs := make([]es.RecordedEvent, len(events))
	res = es.AppendResult{Version: current + uint64(len(events)), Positions: make([]uint64, len(events))}
	for i := range events {
		recs[i] = es.RecordedEvent{Event: events[i].Clone(), StreamID: stream, Version: current + uint64(i) + 1, Position: next + uint64(i), RecordedAt: now}
		res.Positions[i] = recs[i].Position
	}
	return &esMemPending{s: s, res: res, recs: recs}, nil
}

type esMemPending struct {
	s    *EventStore
	res  es.AppendResult
	recs []es.RecordedEvent
	done bool // no lock held (idempotent repeat, or finished)
}

func (p *esMemPending) Commit(ctx context.Context) (es.AppendResult, error) {
	if p.done {
		if p.recs == nil {
			return p.res, nil
		}
		return es.AppendResult{}, errors.New("memory: pending append already finished")
	}
	p.done = true
	s := p.s
	s.mu.Lock()
	for _, r := range p.recs {
		s.log = append(s.log, r)
		s.streams[r.StreamID] = append(s.streams[r.StreamID], r.Position)
		ids := s.ids[r.StreamID]
		if ids == nil {
			ids = map[string]uint64{}
			s.ids[r.StreamID] = ids
		}
		ids[r.Event.ID()] = r.Position
	}
	s.mu.Unlock()
	s.writeMu.Unlock()
	s.notify.Notify()
	return p.res, nil
}

func (p *esMemPending) Rollback(ctx context.Context) error {
	if p.done {
		return nil
	}
	p.done = true
	p.s.writeMu.Unlock()
	return nil
}

// ReadStream implements es.EventStore.
func (s *EventStore) ReadStream(ctx context.Context, stream string, dir es.Direction, from uint64, limit int) ([]es.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos := s.streams[stream]
	var out []es.RecordedEvent
	switch dir {
	case es.Forward:
		if from == 0 {
			from = 1
		}
		for v := from; v <= uint64(len(pos)) && (limit <= 0 || len(out) < limit); v++ {
			out = append(out, esMemCopy(s.log[pos[v-1]-1]))
		}
	case es.Backward:
		if from == 0 || from > uint64(len(pos)) {
			from = uint64(len(pos))
		}
		for v := from; v >= 1 && (limit <= 0 || len(out) < limit); v-- {
			out = append(out, esMemCopy(s.log[pos[v-1]-1]))
		}
	default:
		return nil, fmt.Errorf("memory: invalid direction %d", dir)
	}
	return out, nil
}

// ReadAll implements es.EventStore.
func (s *EventStore) ReadAll(ctx context.Context, after uint64, limit int) ([]es.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if after >= uint64(len(s.log)) {
		return nil, nil
	}
	tail := s.log[after:]
	if limit > 0 && len(tail) > limit {
		tail = tail[:limit]
	}
	out := make([]es.RecordedEvent, len(tail))
	for i := range tail {
		out[i] = esMemCopy(tail[i])
	}
	return out, nil
}

// Head implements es.EventStore.
func (s *EventStore) Head(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return uint64(len(s.log)), nil
}

// Subscribe implements es.EventStore; appends wake subscriptions at once.
func (s *EventStore) Subscribe(ctx context.Context, after uint64, opts ...es.SubscribeOption) (es.Subscription, error) {
	return es.PollSubscribe(ctx, s.ReadAll, &s.notify, after, es.NewSubscribeConfig(opts...)), nil
}

func esMemCopy(r es.RecordedEvent) es.RecordedEvent {
	r.Event = r.Event.Clone()
	return r
}

// SnapshotStore is an in-memory es.SnapshotStore.
type SnapshotStore struct {
	mu sync.Mutex
	m  map[string]es.Snapshot
}

// NewSnapshotStore returns an empty snapshot store.
func NewSnapshotStore() *SnapshotStore { return &SnapshotStore{m: map[string]es.Snapshot{}} }

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.Data = append([]byte(nil), snap.Data...)
	s.m[snap.StreamID] = snap
	return nil
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.m[stream]
	snap.Data = append([]byte(nil), snap.Data...)
	return snap, ok, nil
}

// CheckpointStore is an in-memory es.CheckpointStore.
type CheckpointStore struct {
	mu sync.Mutex
	m  map[string]uint64
}

// NewCheckpointStore returns an empty checkpoint store.
func NewCheckpointStore() *CheckpointStore { return &CheckpointStore{m: map[string]uint64{}} }

// Load implements es.CheckpointStore.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[name]
	return p, ok, nil
}

// Save implements es.CheckpointStore.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = pos
	return nil
}
