package memory_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
)

func TestEventStore(t *testing.T) {
	eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return memory.NewEventStore() })
}

func TestCheckpointStore(t *testing.T) {
	eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore { return memory.NewCheckpointStore() })
}

func TestSnapshotStore(t *testing.T) {
	eventkittest.TestSnapshotStore(t, func(t *testing.T) es.SnapshotStore { return memory.NewSnapshotStore() })
}

// TestSuiteCatchesOutOfOrderStore shows that the conformance suite's
// global-order test is not vacuous: a store that takes positions from a
// counter without holding them until commit (like a plain sequence) lets a
// later position become visible before an earlier one, and the suite fails
// it. The suite runs in a subprocess, whose failure is the expected result.
func TestSuiteCatchesOutOfOrderStore(t *testing.T) {
	if os.Getenv("EVENTKIT_ES_BROKEN_STORE") == "1" {
		eventkittest.TestEventStore(t, func(t *testing.T) es.EventStore { return newSeqStore() })
		return
	}
	if testing.Short() {
		t.Skip("runs the suite in a subprocess")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesOutOfOrderStore$/^GlobalOrderUnderConcurrentWriters$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "EVENTKIT_ES_BROKEN_STORE=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed a store whose positions become visible out of order:\n%s", out)
	}
	if !bytes.Contains(out, []byte("--- FAIL: TestSuiteCatchesOutOfOrderStore/GlobalOrderUnderConcurrentWriters")) ||
		!bytes.Contains(out, []byte("the subscriber got")) && !bytes.Contains(out, []byte("subscriber got")) {
		t.Fatalf("the suite failed the broken store, but not in the global-order test:\n%s", out)
	}
	t.Logf("suite output for the broken store:\n%s", bytes.TrimSpace(out))
}

// seqStore is deliberately broken: positions come from a counter when an
// append begins, and its events become visible when it commits, without a
// lock in between — the classic sequence-based event table.
type seqStore struct {
	mu        sync.Mutex
	next      uint64
	versions  map[string]uint64
	committed map[uint64]es.RecordedEvent
	notify    es.Notifier
}

func newSeqStore() *seqStore {
	return &seqStore{versions: map[string]uint64{}, committed: map[uint64]es.RecordedEvent{}}
}

func (s *seqStore) BeginAppend(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.PendingAppend, error) {
	if err := es.ValidateAppend(stream, events); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.versions[stream]
	if !expected.Matches(cur) {
		return nil, &es.ConflictError{Stream: stream, Expected: expected, Actual: cur}
	}
	p := &seqPending{s: s}
	for i := range events {
		s.next++
		cur++
		p.recs = append(p.recs, es.RecordedEvent{Event: events[i].Clone(), StreamID: stream, Version: cur, Position: s.next, RecordedAt: time.Now()})
		p.res.Positions = append(p.res.Positions, s.next)
	}
	p.res.Version = cur
	s.versions[stream] = cur
	return p, nil
}

type seqPending struct {
	s    *seqStore
	recs []es.RecordedEvent
	res  es.AppendResult
}

func (p *seqPending) Commit(ctx context.Context) (es.AppendResult, error) {
	p.s.mu.Lock()
	for _, r := range p.recs {
		p.s.committed[r.Position] = r
	}
	p.s.mu.Unlock()
	p.s.notify.Notify()
	return p.res, nil
}

func (p *seqPending) Rollback(ctx context.Context) error { return nil }

func (s *seqStore) Append(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.AppendResult, error) {
	p, err := s.BeginAppend(ctx, stream, expected, events...)
	if err != nil {
		return es.AppendResult{}, err
	}
	return p.Commit(ctx)
}

func (s *seqStore) sorted(keep func(r *es.RecordedEvent) bool) []es.RecordedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []es.RecordedEvent
	for _, r := range s.committed {
		if keep(&r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Position < out[j].Position })
	return out
}

func (s *seqStore) ReadStream(ctx context.Context, stream string, dir es.Direction, from uint64, limit int) ([]es.RecordedEvent, error) {
	out := s.sorted(func(r *es.RecordedEvent) bool { return r.StreamID == stream && r.Version >= from })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *seqStore) ReadAll(ctx context.Context, after uint64, limit int) ([]es.RecordedEvent, error) {
	out := s.sorted(func(r *es.RecordedEvent) bool { return r.Position > after })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *seqStore) Head(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var h uint64
	for p := range s.committed {
		h = max(h, p)
	}
	return h, nil
}

func (s *seqStore) Subscribe(ctx context.Context, after uint64, opts ...es.SubscribeOption) (es.Subscription, error) {
	return es.PollSubscribe(ctx, s.ReadAll, &s.notify, after, es.NewSubscribeConfig(opts...)), nil
}
