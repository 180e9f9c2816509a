package eventkittest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// SagaStoreFactory returns a saga store for one test, and the outbox.Store
// that its Save writes the outgoing messages to. Stores may be shared
// between tests: each test uses its own saga names, and expects no other
// relay on the outbox while it runs.
type SagaStoreFactory func(t *testing.T) (saga.Store, outbox.Store)

// TestSagaStore runs the conformance suite for a saga.Store: a round trip of
// every field; creation and update with optimistic concurrency (one winner
// among 16 concurrent saves); handled event ids, forgotten when the
// instance is final; the outgoing messages
// written to the outbox with the change, and not at all with a refused
// change; due timers in order; listing with filters and pages; isolation
// between sagas.
func TestSagaStore(t *testing.T, newStore SagaStoreFactory) {
	t.Run("RoundTrip", func(t *testing.T) { sagaTestRoundTrip(t, newStore) })
	t.Run("Versions", func(t *testing.T) { sagaTestVersions(t, newStore) })
	t.Run("SeenEvents", func(t *testing.T) { sagaTestSeen(t, newStore) })
	t.Run("OutgoingWithChange", func(t *testing.T) { sagaTestOutgoing(t, newStore) })
	t.Run("ConcurrentSavesOneWinner", func(t *testing.T) { sagaTestConcurrent(t, newStore) })
	t.Run("Due", func(t *testing.T) { sagaTestDue(t, newStore) })
	t.Run("List", func(t *testing.T) { sagaTestList(t, newStore) })
}

// sagaRecord returns a record with every field set, at version v.
func sagaRecord(name, id string, v uint64) saga.Record {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	return saga.Record{
		Saga: name, ID: id, Version: v, Status: saga.Running,
		State:    []byte(fmt.Sprintf(`{"n":%d}`, v)),
		Done:     []string{"reserve", "charge"}[:min(int(v), 2)],
		Deadline: at.Add(time.Hour), Wake: at.Add(time.Hour), Attempts: int(v),
		History: []saga.Entry{{Time: at, Kind: saga.EntryStep, Step: "reserve",
			EventID: "e1", EventType: "order.placed", Error: "none"}},
		Created: at, Updated: at.Add(time.Duration(v) * time.Second),
	}
}

func sagaCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sagaSave saves c and fails the test on an error.
func sagaSave(t *testing.T, s saga.Store, c saga.Change) {
	t.Helper()
	if err := s.Save(sagaCtx(t), c); err != nil {
		t.Fatalf("Save(%s %q v%d): %v", c.Record.Saga, c.Record.ID, c.Record.Version, err)
	}
}

// sagaWantRecord fails the test unless the stored instance equals want.
func sagaWantRecord(t *testing.T, s saga.Store, want saga.Record) {
	t.Helper()
	got, err := s.Load(sagaCtx(t), want.Saga, want.ID)
	if err != nil {
		t.Fatalf("Load(%s %q): %v", want.Saga, want.ID, err)
	}
	if !sagaEqual(got, want) {
		t.Fatalf("Load(%s %q) =\n%+v\nwant\n%+v", want.Saga, want.ID, got, want)
	}
}

func sagaEqual(a, b saga.Record) bool {
	times := func(r *saga.Record) [4]time.Time {
		return [4]time.Time{r.Deadline.UTC(), r.Wake.UTC(), r.Created.UTC(), r.Updated.UTC()}
	}
	ta, tb := times(&a), times(&b)
	for i := range a.History {
		a.History[i].Time = a.History[i].Time.UTC()
	}
	for i := range b.History {
		b.History[i].Time = b.History[i].Time.UTC()
	}
	a.Deadline, a.Wake, a.Created, a.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	b.Deadline, b.Wake, b.Created, b.Updated = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(a.Done) == 0 && len(b.Done) == 0 {
		a.Done, b.Done = nil, nil
	}
	var sa, sb any
	if json.Unmarshal(a.State, &sa) != nil || json.Unmarshal(b.State, &sb) != nil || !reflect.DeepEqual(sa, sb) {
		return false
	}
	a.State, b.State = nil, nil
	return ta == tb && reflect.DeepEqual(a, b)
}

func sagaTestRoundTrip(t *testing.T, newStore SagaStoreFactory) {
	s, _ := newStore(t)
	name, id := UniqueName("saga-"), UniqueName("order-")
	if _, err := s.Load(sagaCtx(t), name, id); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load(missing) error = %v; want ErrNotFound", err)
	}
	r := sagaRecord(name, id, 1)
	sagaSave(t, s, saga.Change{Record: r})
	sagaWantRecord(t, s, r)
	r2 := sagaRecord(name, id, 2)
	r2.Status, r2.Deadline, r2.Wake = saga.Compensated, time.Time{}, time.Time{}
	sagaSave(t, s, saga.Change{Record: r2})
	sagaWantRecord(t, s, r2)
	if _, err := s.Load(sagaCtx(t), UniqueName("other-"), id); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load(other saga, same id) error = %v; want ErrNotFound", err)
	}
}

func sagaTestVersions(t *testing.T, newStore SagaStoreFactory) {
	s, _ := newStore(t)
	name, id := UniqueName("saga-"), UniqueName("order-")
	for _, v := range []uint64{0, 2} {
		if err := s.Save(sagaCtx(t), saga.Change{Record: sagaRecord(name, id, v)}); !errors.Is(err, saga.ErrConflict) {
			t.Fatalf("Save(new instance at version %d) = %v; want ErrConflict", v, err)
		}
	}
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 1)})
	for _, v := range []uint64{1, 3} {
		if err := s.Save(sagaCtx(t), saga.Change{Record: sagaRecord(name, id, v)}); !errors.Is(err, saga.ErrConflict) {
			t.Fatalf("Save(version %d over version 1) = %v; want ErrConflict", v, err)
		}
	}
	sagaWantRecord(t, s, sagaRecord(name, id, 1))
	sagaSave(t, s, saga.Change{Record: sagaRecord(UniqueName("other-"), id, 1)})
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 2)})
	sagaWantRecord(t, s, sagaRecord(name, id, 2))
}

func sagaTestSeen(t *testing.T, newStore SagaStoreFactory) {
	s, _ := newStore(t)
	ctx := sagaCtx(t)
	name, id := UniqueName("saga-"), UniqueName("order-")
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 1), EventID: "e1"})
	for _, c := range []struct {
		saga, id, event string
		want            bool
	}{{name, id, "e1", true}, {name, id, "e2", false}, {name, "other", "e1", false}, {"other", id, "e1", false}} {
		if seen, err := s.Seen(ctx, c.saga, c.id, c.event); err != nil || seen != c.want {
			t.Fatalf("Seen(%s, %s, %s) = %v, %v; want %v", c.saga, c.id, c.event, seen, err, c.want)
		}
	}
	if err := s.Save(ctx, saga.Change{Record: sagaRecord(name, id, 2), EventID: "e1"}); !errors.Is(err, saga.ErrConflict) {
		t.Fatalf("Save(with a handled event id) = %v; want ErrConflict", err)
	}
	sagaWantRecord(t, s, sagaRecord(name, id, 1))
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 2), EventID: "e2"})
	if seen, err := s.Seen(ctx, name, id, "e2"); err != nil || !seen {
		t.Fatalf("Seen(e2) after its save = %v, %v; want true", seen, err)
	}
	final := sagaRecord(name, id, 3)
	final.Status = saga.Completed
	sagaSave(t, s, saga.Change{Record: final, EventID: "e3"})
	for _, e := range []string{"e1", "e2", "e3"} {
		if seen, err := s.Seen(ctx, name, id, e); err != nil || seen {
			t.Fatalf("Seen(%s) after the instance completed = %v, %v; want false (a final instance forgets them)", e, seen, err)
		}
	}
}

// sagaOutbox returns the pending records of o whose event ids start with
// prefix, by event id (the outbox orders the events of one key, not events
// of different keys).
func sagaOutbox(t *testing.T, o outbox.Store, prefix string) []outbox.Record {
	t.Helper()
	ctx := sagaCtx(t)
	owner := UniqueName("suite-")
	parts, err := o.Claim(ctx, owner, time.Minute)
	if err != nil {
		t.Fatalf("outbox Claim: %v", err)
	}
	defer func() { _ = o.Release(ctx, owner) }()
	if len(parts) != o.Partitions() {
		t.Fatalf("outbox Claim = %v; want all %d partitions (is another relay running?)", parts, o.Partitions())
	}
	var cursors []outbox.Cursor
	for _, p := range parts {
		cursors = append(cursors, outbox.Cursor{Partition: p})
	}
	recs, err := o.Fetch(ctx, cursors, 100000)
	if err != nil {
		t.Fatalf("outbox Fetch: %v", err)
	}
	var out []outbox.Record
	for _, r := range recs {
		if strings.HasPrefix(r.Event.ID(), prefix) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b outbox.Record) int { return strings.Compare(a.Event.ID(), b.Event.ID()) })
	return out
}

func sagaTestOutgoing(t *testing.T, newStore SagaStoreFactory) {
	s, o := newStore(t)
	name, id := UniqueName("saga-"), UniqueName("order-")
	prefix := UniqueName("out-")
	msgs := []saga.Message{
		{Topic: "orders.reserve", Event: NewEvent(prefix + "-1")},
		{Topic: "payments.charge", Event: NewEvent(prefix + "-2")},
	}
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 1), EventID: "e1", Outgoing: msgs})
	refused := []saga.Message{{Topic: "orders.cancel", Event: NewEvent(prefix + "-3")}}
	if err := s.Save(sagaCtx(t), saga.Change{Record: sagaRecord(name, id, 1), Outgoing: refused}); !errors.Is(err, saga.ErrConflict) {
		t.Fatalf("Save(conflicting, with outgoing) = %v; want ErrConflict", err)
	}
	got := sagaOutbox(t, o, prefix)
	if len(got) != 2 {
		t.Fatalf("outbox holds %d of the messages; want the 2 of the committed change (not the refused one)", len(got))
	}
	for i, r := range got {
		if r.Topic != msgs[i].Topic || r.Event.ID() != msgs[i].Event.ID() || string(r.Event.Data()) != string(msgs[i].Event.Data()) {
			t.Fatalf("outbox record %d = %s %s; want %s %s", i, r.Topic, r.Event.ID(), msgs[i].Topic, msgs[i].Event.ID())
		}
	}
}

func sagaTestConcurrent(t *testing.T, newStore SagaStoreFactory) {
	s, o := newStore(t)
	name, id := UniqueName("saga-"), UniqueName("order-")
	prefix := UniqueName("race-")
	sagaSave(t, s, saga.Change{Record: sagaRecord(name, id, 1)})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			r := sagaRecord(name, id, 2)
			r.State = []byte(fmt.Sprintf(`{"writer":%d}`, i))
			err := s.Save(sagaCtx(t), saga.Change{Record: r, EventID: fmt.Sprint("e", i),
				Outgoing: []saga.Message{{Topic: "race", Event: NewEvent(fmt.Sprintf("%s-%d", prefix, i))}}})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, saga.ErrConflict):
				t.Errorf("concurrent Save: %v; want nil or ErrConflict", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent saves of version 2 succeeded; want 1", wins.Load())
	}
	if n := len(sagaOutbox(t, o, prefix)); n != 1 {
		t.Fatalf("outbox holds %d messages of the concurrent saves; want the winner's 1", n)
	}
}

func sagaTestDue(t *testing.T, newStore SagaStoreFactory) {
	s, _ := newStore(t)
	ctx := sagaCtx(t)
	name := UniqueName("saga-")
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	wakes := map[string]time.Time{"a": now.Add(-time.Minute), "b": now.Add(-time.Hour), "c": now,
		"d": now.Add(time.Second), "e": {}}
	for id, w := range wakes {
		r := sagaRecord(name, id, 1)
		r.Wake = w
		sagaSave(t, s, saga.Change{Record: r})
	}
	r := sagaRecord(UniqueName("other-"), "z", 1)
	r.Wake = now.Add(-24 * time.Hour)
	sagaSave(t, s, saga.Change{Record: r})
	for _, c := range []struct {
		limit int
		want  []string
	}{{10, []string{"b", "a", "c"}}, {2, []string{"b", "a"}}} {
		got, err := s.Due(ctx, name, now, c.limit)
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("Due(limit %d) = %v, %v; want %v (earliest first, wake not after now)", c.limit, got, err, c.want)
		}
	}
	r = sagaRecord(name, "b", 2)
	r.Wake = time.Time{}
	sagaSave(t, s, saga.Change{Record: r})
	if got, err := s.Due(ctx, name, now, 10); err != nil || !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("Due after clearing b's wake = %v, %v; want [a c]", got, err)
	}
}

func sagaTestList(t *testing.T, newStore SagaStoreFactory) {
	s, _ := newStore(t)
	ctx := sagaCtx(t)
	name := UniqueName("saga-")
	for i, st := range []saga.Status{saga.Running, saga.Completed, saga.Running, saga.Compensating, saga.Running} {
		r := sagaRecord(name, fmt.Sprint("i", i), 1)
		r.Status = st
		sagaSave(t, s, saga.Change{Record: r})
	}
	sagaSave(t, s, saga.Change{Record: sagaRecord(UniqueName("other-"), "i9", 1)})
	for _, c := range []struct {
		f    saga.Filter
		want []string
	}{
		{saga.Filter{}, []string{"i0", "i1", "i2", "i3", "i4"}},
		{saga.Filter{Status: saga.Running}, []string{"i0", "i2", "i4"}},
		{saga.Filter{Status: saga.Running, After: "i0", Limit: 1}, []string{"i2"}},
		{saga.Filter{After: "i2"}, []string{"i3", "i4"}},
		{saga.Filter{Status: saga.Compensated}, nil},
	} {
		recs, err := s.List(ctx, name, c.f)
		if err != nil {
			t.Fatalf("List(%+v): %v", c.f, err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
			want := sagaRecord(name, r.ID, 1)
			want.Status = r.Status
			if !sagaEqual(r, want) {
				t.Fatalf("List(%+v) returned %+v; want %+v", c.f, r, want)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("List(%+v) = %v; want %v", c.f, got, c.want)
		}
	}
}
