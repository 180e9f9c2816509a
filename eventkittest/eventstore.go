package eventkittest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
)

// EventStoreFactory returns a store for one test. Stores of one call to
// TestEventStore may share their global log (tests use unique stream ids
// and never assume the log is empty), but a store that is isolated per test
// is better.
type EventStoreFactory func(t *testing.T) es.EventStore

// TestEventStore runs the conformance suite for an es.EventStore:
// optimistic concurrency, idempotent re-append, stream and global reads from
// the middle, concurrent appends to one stream from 16 goroutines, a
// subscriber following the global log while concurrent writers commit, roll
// back and hold their transactions open (the last two through
// es.TxAppender, which stores with transactions implement), subscription
// filters and resumption from a checkpoint.
func TestEventStore(t *testing.T, newStore EventStoreFactory) {
	t.Run("AppendAndRead", func(t *testing.T) { esTestAppendAndRead(t, newStore(t)) })
	t.Run("ExpectedVersion", func(t *testing.T) { esTestExpected(t, newStore(t)) })
	t.Run("IdempotentAppend", func(t *testing.T) { esTestIdempotent(t, newStore(t)) })
	t.Run("ReadFromMiddle", func(t *testing.T) { esTestReadMiddle(t, newStore(t)) })
	t.Run("ConcurrentAppendsOneStream", func(t *testing.T) { esTestConcurrentOneStream(t, newStore(t)) })
	t.Run("SubscribeCatchUpThenLive", func(t *testing.T) { esTestSubscribeLive(t, newStore(t)) })
	t.Run("SubscribeFilter", func(t *testing.T) { esTestSubscribeFilter(t, newStore(t)) })
	t.Run("SubscribeResume", func(t *testing.T) { esTestSubscribeResume(t, newStore(t)) })
	t.Run("GlobalOrderUnderConcurrentWriters", func(t *testing.T) { esTestGlobalOrder(t, newStore(t)) })
}

func esCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func esTestAppendAndRead(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	stream := UniqueName("stream-")
	full := fullEvent(UniqueName("full-"))
	evs := append([]event.Event{full}, NewEvents(UniqueName("e"), 2)...)
	head0, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, stream, es.NoStream, evs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.Version != 3 || len(res.Positions) != 3 {
		t.Fatalf("Append = %+v; want version 3 and 3 positions", res)
	}
	for i := 1; i < 3; i++ {
		if res.Positions[i] != res.Positions[i-1]+1 {
			t.Fatalf("positions of one append %v are not consecutive", res.Positions)
		}
	}
	if res.Positions[0] <= head0 {
		t.Fatalf("first position %d not after the head %d before the append", res.Positions[0], head0)
	}
	head, err := s.Head(ctx)
	if err != nil || head < res.Positions[2] {
		t.Fatalf("Head = %d, %v; want >= %d", head, err, res.Positions[2])
	}
	got, err := s.ReadStream(ctx, stream, es.Forward, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ReadStream returned %d events, want 3", len(got))
	}
	for i, r := range got {
		if d := DiffEvents(evs[i], r.Event); d != "" {
			t.Errorf("event %d differs: %s", i, d)
		}
		if r.StreamID != stream || r.Version != uint64(i+1) || r.Position != res.Positions[i] {
			t.Errorf("event %d recorded as %s v%d @%d; want %s v%d @%d", i, r.StreamID, r.Version, r.Position, stream, i+1, res.Positions[i])
		}
		if r.RecordedAt.IsZero() || time.Since(r.RecordedAt) > time.Hour || time.Until(r.RecordedAt) > time.Hour {
			t.Errorf("event %d RecordedAt = %v", i, r.RecordedAt)
		}
	}
	all, err := s.ReadAll(ctx, res.Positions[0]-1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Position != res.Positions[0] || all[0].Event.ID() != full.ID() {
		t.Fatalf("ReadAll from the append's first position returned %d events (first %+v)", len(all), all)
	}
	if d := DiffEvents(full, all[0].Event); d != "" {
		t.Errorf("ReadAll event differs: %s", d)
	}
	if none, err := s.ReadStream(ctx, UniqueName("missing-"), es.Forward, 0, 0); err != nil || len(none) != 0 {
		t.Fatalf("ReadStream(missing) = %d events, %v; want none, nil", len(none), err)
	}
	if _, err := s.Append(ctx, "", es.Any, NewEvent(UniqueName("x"))); err == nil {
		t.Error("Append to an empty stream id succeeded")
	}
	if _, err := s.Append(ctx, stream, es.Any); err == nil {
		t.Error("Append of no event succeeded")
	}
}

func esTestExpected(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	stream := UniqueName("exp-")
	p := UniqueName("x")
	if _, err := s.Append(ctx, stream, es.Exact(1), NewEvent(p+"-0")); !esIsConflict(err, stream, es.Exact(1), 0) {
		t.Fatalf("Exact(1) on a new stream: err = %v; want a ConflictError{%s, exact(1), 0}", err, stream)
	}
	if _, err := s.Append(ctx, stream, es.NoStream, NewEvent(p+"-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, es.NoStream, NewEvent(p+"-2")); !esIsConflict(err, stream, es.NoStream, 1) {
		t.Fatalf("NoStream on an existing stream: err = %v; want ConflictError{%s, no-stream, 1}", err, stream)
	}
	if res, err := s.Append(ctx, stream, es.Exact(1), NewEvent(p+"-3"), NewEvent(p+"-4")); err != nil || res.Version != 3 {
		t.Fatalf("Exact(1) = %+v, %v; want version 3", res, err)
	}
	if _, err := s.Append(ctx, stream, es.Exact(2), NewEvent(p+"-5")); !esIsConflict(err, stream, es.Exact(2), 3) {
		t.Fatalf("stale Exact(2): err = %v; want ConflictError{%s, exact(2), 3}", err, stream)
	}
	if res, err := s.Append(ctx, stream, es.Any, NewEvent(p+"-6")); err != nil || res.Version != 4 {
		t.Fatalf("Any = %+v, %v; want version 4", res, err)
	}
	got, err := s.ReadStream(ctx, stream, es.Forward, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, strings.TrimPrefix(r.Event.ID(), p))
	}
	if strings.Join(ids, ",") != "-1,-3,-4,-6" {
		t.Fatalf("stream holds %v; want [-1 -3 -4 -6] (failed appends must write nothing)", ids)
	}
}

func esIsConflict(err error, stream string, expected es.ExpectedVersion, actual uint64) bool {
	var ce *es.ConflictError
	return errors.As(err, &ce) && errors.Is(err, es.ErrConflict) && ce.Stream == stream && ce.Expected == expected && ce.Actual == actual
}

func esTestIdempotent(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	stream := UniqueName("idem-")
	p := UniqueName("x")
	first, err := s.Append(ctx, stream, es.NoStream, NewEvents(p+"-a", 2)...)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Append(ctx, stream, es.Exact(2), NewEvents(p+"-b", 3)...)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := s.Head(ctx)
	// A retried command after a timeout: the same events, the same expected version.
	again, err := s.Append(ctx, stream, es.Exact(2), NewEvents(p+"-b", 3)...)
	if err != nil {
		t.Fatalf("re-append of the same events at the same place: %v", err)
	}
	if again.Version != second.Version || fmt.Sprint(again.Positions) != fmt.Sprint(second.Positions) {
		t.Fatalf("re-append returned %+v; want the first result %+v", again, second)
	}
	againFirst, err := s.Append(ctx, stream, es.NoStream, NewEvents(p+"-a", 2)...)
	if err != nil || fmt.Sprint(againFirst) != fmt.Sprint(first) {
		t.Fatalf("re-append of the first events = %+v, %v; want %+v", againFirst, err, first)
	}
	againAny, err := s.Append(ctx, stream, es.Any, NewEvents(p+"-b", 3)...)
	if err != nil || fmt.Sprint(againAny) != fmt.Sprint(second) {
		t.Fatalf("re-append with Any = %+v, %v; want %+v", againAny, err, second)
	}
	if h, _ := s.Head(ctx); h != head {
		// Other tests may share the log; check the stream itself below.
		t.Logf("head moved from %d to %d during re-appends (shared log)", head, h)
	}
	got, err := s.ReadStream(ctx, stream, es.Forward, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("stream holds %d events after re-appends; want 5", len(got))
	}
	// The same ids at another place are not a repeat.
	if _, err := s.Append(ctx, stream, es.Exact(5), NewEvents(p+"-b", 3)...); err == nil {
		t.Fatal("appending ids already in the stream at another place succeeded")
	}
	// A partial overlap is not a repeat either.
	mixed := []event.Event{NewEvent(p + "-b-2"), NewEvent(p + "-new")}
	if _, err := s.Append(ctx, stream, es.Exact(4), mixed...); err == nil {
		t.Fatal("a partially repeated append succeeded")
	}
	if got, _ := s.ReadStream(ctx, stream, es.Forward, 0, 0); len(got) != 5 {
		t.Fatalf("stream holds %d events after rejected appends; want 5", len(got))
	}
}

func esTestReadMiddle(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	stream := UniqueName("mid-")
	p := UniqueName("x")
	var positions []uint64
	for i := 0; i < 4; i++ {
		res, err := s.Append(ctx, stream, es.Any, NewEvents(fmt.Sprintf("%s-%d", p, i), 5)...)
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Positions...)
	}
	check := func(name string, got []es.RecordedEvent, versions ...uint64) {
		t.Helper()
		var gv []uint64
		for _, r := range got {
			gv = append(gv, r.Version)
			if r.Position != positions[r.Version-1] {
				t.Errorf("%s: v%d at position %d; want %d", name, r.Version, r.Position, positions[r.Version-1])
			}
		}
		if fmt.Sprint(gv) != fmt.Sprint(versions) {
			t.Fatalf("%s: versions %v; want %v", name, gv, versions)
		}
	}
	rd := func(dir es.Direction, from uint64, limit int) []es.RecordedEvent {
		t.Helper()
		got, err := s.ReadStream(ctx, stream, dir, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	check("forward from 7, limit 3", rd(es.Forward, 7, 3), 7, 8, 9)
	check("forward from 18", rd(es.Forward, 18, 0), 18, 19, 20)
	check("forward from 21", rd(es.Forward, 21, 0))
	check("backward from 5, limit 3", rd(es.Backward, 5, 3), 5, 4, 3)
	check("backward from the end, limit 2", rd(es.Backward, 0, 2), 20, 19)
	check("backward from 2", rd(es.Backward, 2, 0), 2, 1)
	all, err := s.ReadAll(ctx, positions[9], 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("ReadAll(after %d, 4) returned %d events", positions[9], len(all))
	}
	last := positions[9]
	for _, r := range all {
		if r.Position <= last {
			t.Fatalf("ReadAll positions not increasing after %d: %d", last, r.Position)
		}
		last = r.Position
	}
	if all[0].Position != positions[10] && all[0].StreamID == stream {
		t.Fatalf("ReadAll(after %d) started at %d; want %d", positions[9], all[0].Position, positions[10])
	}
}

// esTestConcurrentOneStream: 16 goroutines race to append to one stream.
func esTestConcurrentOneStream(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	const G, perG = 16, 4
	stream := UniqueName("race-")
	p := UniqueName("x")
	esRaceFirst(t, ctx, s, stream, p, G)
	winner := esRaceAppends(t, ctx, s, stream, p, G, perG)
	if t.Failed() {
		return
	}
	got, err := s.ReadStream(ctx, stream, es.Forward, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+G*perG {
		t.Fatalf("stream holds %d events; want %d", len(got), 1+G*perG)
	}
	seen := map[string]bool{}
	for i, r := range got {
		if r.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d", i, r.Version)
		}
		if seen[r.Event.ID()] {
			t.Fatalf("event %s stored twice", r.Event.ID())
		}
		seen[r.Event.ID()] = true
		if i > 0 && winner[r.Version] != r.Event.ID() {
			t.Fatalf("version %d holds %s; the append that won it was %s", r.Version, r.Event.ID(), winner[r.Version])
		}
		if i > 0 && r.Position <= got[i-1].Position {
			t.Fatalf("positions not increasing along the stream at version %d", r.Version)
		}
	}
}

// esRaceFirst: g goroutines all append at version 0 to the new stream;
// exactly one wins, every other gets a conflict at version 1.
func esRaceFirst(t *testing.T, ctx context.Context, s es.EventStore, stream, p string, g int) {
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Append(ctx, stream, es.NoStream, NewEvent(fmt.Sprintf("%s-first-%d", p, i)))
			var ce *es.ConflictError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &ce) && ce.Actual == 1:
				conflicts.Add(1)
			default:
				t.Errorf("goroutine %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != int32(g-1) {
		t.Fatalf("%d goroutines appending at version 0: %d won, %d conflicts; want 1 and %d", g, wins.Load(), conflicts.Load(), g-1)
	}
}

// esRaceAppends: g goroutines each append perG events, one at a time, at
// the version they read, retrying on conflict. It returns the event id
// that won each version, failing t if a version was won twice.
func esRaceAppends(t *testing.T, ctx context.Context, s es.EventStore, stream, p string, g, perG int) map[uint64]string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	winner := map[uint64]string{}
	won := func(v uint64, id string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := winner[v]; dup {
			t.Errorf("version %d won twice: %s and %s", v, prev, id)
		}
		winner[v] = id
	}
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perG; j++ {
				id := fmt.Sprintf("%s-%d-%d", p, i, j)
				v, err := esAppendAtRead(ctx, s, stream, NewEvent(id))
				if err != nil {
					t.Error(err)
					return
				}
				won(v, id)
			}
		}()
	}
	wg.Wait()
	return winner
}

// esAppendAtRead appends e at the stream's last version as read, reading
// again after a short random pause on each conflict; it returns the version
// written.
func esAppendAtRead(ctx context.Context, s es.EventStore, stream string, e event.Event) (uint64, error) {
	for {
		last, err := s.ReadStream(ctx, stream, es.Backward, 0, 1)
		if err != nil || len(last) != 1 {
			return 0, fmt.Errorf("read version: %d events, %v", len(last), err)
		}
		res, err := s.Append(ctx, stream, es.Exact(last[0].Version), e)
		if errors.Is(err, es.ErrConflict) {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // back off a little
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
		return res.Version, nil
	}
}

func esTestSubscribeLive(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream := UniqueName("live-")
	p := UniqueName("x")
	if _, err := s.Append(ctx, stream, es.Any, NewEvents(p+"-old", 5)...); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, head, es.WithStreamPrefix(stream), es.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := esReceive(t, sub, 5)
	go func() {
		for i := 0; i < 5; i++ {
			if _, err := s.Append(ctx, stream, es.Any, NewEvent(fmt.Sprintf("%s-new-%d", p, i))); err != nil {
				t.Error(err)
			}
		}
	}()
	got = append(got, esReceive(t, sub, 5)...)
	for i, r := range got {
		if r.Version != uint64(i+1) {
			t.Fatalf("subscription delivered v%d at index %d", r.Version, i)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Events(); ok {
		t.Fatal("Events not closed after Close")
	}
	if sub.Err() != nil {
		t.Fatalf("Err after Close = %v", sub.Err())
	}
}

func esReceive(t *testing.T, sub es.Subscription, n int) []es.RecordedEvent {
	t.Helper()
	var out []es.RecordedEvent
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for len(out) < n {
		select {
		case r, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events: %v", len(out), n, sub.Err())
			}
			out = append(out, r)
		case <-timeout.C:
			t.Fatalf("received %d of %d events in 30s", len(out), n)
		}
	}
	return out
}

func esTestSubscribeFilter(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	head, _ := s.Head(ctx)
	base := UniqueName("flt-")
	other := UniqueName("oth-")
	mk := func(id, typ string) event.Event {
		e := NewEvent(id)
		e.SetType(typ)
		return e
	}
	p := UniqueName("x")
	for i := 0; i < 3; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("%s-%d", base, i), es.Any, mk(p+fmt.Sprint("a", i), "t.a"), mk(p+fmt.Sprint("b", i), "t.b")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("%s-%d", other, i), es.Any, mk(p+fmt.Sprint("c", i), "t.a")); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := s.Subscribe(ctx, head, es.WithStreamPrefix(base), es.WithTypes("t.a"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := esReceive(t, sub, 3)
	for _, r := range got {
		if !strings.HasPrefix(r.StreamID, base) || r.Event.Type() != "t.a" {
			t.Fatalf("filter let through %s %s", r.StreamID, r.Event.Type())
		}
	}
	// Nothing more arrives: a marker after the filtered events proves it.
	if _, err := s.Append(ctx, base+"-z", es.Any, mk(p+"z", "t.a")); err != nil {
		t.Fatal(err)
	}
	if last := esReceive(t, sub, 1); last[0].Event.ID() != p+"z" {
		t.Fatalf("after the three matching events the filter delivered %s (%s)", last[0].Event.ID(), last[0].Event.Type())
	}
}

func esTestSubscribeResume(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	head, _ := s.Head(ctx)
	stream := UniqueName("resume-")
	p := UniqueName("x")
	if _, err := s.Append(ctx, stream, es.Any, NewEvents(p, 20)...); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, head, es.WithStreamPrefix(stream), es.WithBuffer(1), es.WithBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	first := esReceive(t, sub, 7)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	checkpoint := first[len(first)-1].Position
	// More events while the subscriber is stopped.
	if _, err := s.Append(ctx, stream, es.Any, NewEvents(p+"-later", 5)...); err != nil {
		t.Fatal(err)
	}
	sub2, err := s.Subscribe(ctx, checkpoint, es.WithStreamPrefix(stream))
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	rest := esReceive(t, sub2, 18)
	all := append(first, rest...)
	for i, r := range all {
		if r.Version != uint64(i+1) {
			t.Fatalf("after resuming at position %d: index %d has v%d (lost or repeated)", checkpoint, i, r.Version)
		}
	}
}

// esTestGlobalOrder: writers append to many streams concurrently, some in
// transactions held open for seconds, some rolled back, while a subscriber
// follows the global log. The subscriber must get every committed event
// exactly once, in position order, with no committed position skipped, and
// must not stall behind a rolled-back append.
func esTestGlobalOrder(t *testing.T, s es.EventStore) {
	ctx := esCtx(t)
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &esGlobalRun{t: t, ctx: ctx, s: s, prefix: UniqueName("glob-"), committed: map[string]uint64{}, rolledBack: map[string]bool{}}
	sub, err := s.Subscribe(ctx, head, es.WithPollInterval(20*time.Millisecond), es.WithBuffer(16))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	finalID := r.prefix + "-final"
	consumed := esFollow(sub, head, r.prefix, finalID)
	txa, isTx := s.(es.TxAppender)
	if isTx {
		r.heldWanted = 2
	}
	r.startWriters(8, 25)
	if isTx {
		r.startHeld(txa)
		r.startRolledBack(txa)
	} else {
		t.Log("store is not an es.TxAppender: no held-open or rolled-back writers")
	}
	r.wg.Wait()
	if t.Failed() {
		return
	}
	// One more append after everything: the subscriber must reach it.
	final := NewEvent(finalID)
	res, err := s.Append(ctx, r.prefix+"-final", es.NoStream, final)
	if err != nil {
		t.Fatal(err)
	}
	r.record([]event.Event{final}, res)
	sr := <-consumed
	if sr.err != "" {
		t.Fatal(sr.err)
	}
	r.check(sr.got, head)
}

// esGlobalRun is the state of one esTestGlobalOrder: its writers, and what
// they committed and rolled back.
type esGlobalRun struct {
	t      *testing.T
	ctx    context.Context
	s      es.EventStore
	prefix string
	wg     sync.WaitGroup

	mu         sync.Mutex
	committed  map[string]uint64 // event id -> position
	rolledBack map[string]bool

	heldWanted                       int32 // held-open appends to begin
	heldBegun, heldCommitted, rolled atomic.Int32
}

func (r *esGlobalRun) record(evs []event.Event, res es.AppendResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range evs {
		r.committed[e.ID()] = res.Positions[i]
	}
}

// esFollowResult is what the follower of the global log received.
type esFollowResult struct {
	got []es.RecordedEvent
	err string
}

// esFollow reads sub in the background until the event finalID, keeping
// the events of the streams with prefix; it reports an error if the
// subscription ends, delivers a position out of order or twice, or stalls
// for 90s.
func esFollow(sub es.Subscription, head uint64, prefix, finalID string) <-chan esFollowResult {
	consumed := make(chan esFollowResult, 1)
	go func() {
		var res esFollowResult
		last := head
		deadline := time.NewTimer(90 * time.Second)
		defer deadline.Stop()
		defer func() { consumed <- res }()
		for {
			select {
			case r, ok := <-sub.Events():
				if !ok {
					res.err = fmt.Sprintf("subscription ended after %d events: %v", len(res.got), sub.Err())
					return
				}
				if r.Position <= last {
					res.err = fmt.Sprintf("subscription delivered position %d after %d (out of order or twice)", r.Position, last)
					return
				}
				last = r.Position
				if !strings.HasPrefix(r.StreamID, prefix) {
					continue // another test's event in a shared log
				}
				res.got = append(res.got, r)
				if r.Event.ID() == finalID {
					return
				}
			case <-deadline.C:
				res.err = fmt.Sprintf("subscriber stalled: %d events after 90s (last position %d)", len(res.got), last)
				return
			}
		}
	}()
	return consumed
}

// startWriters starts n writers of at least each appends to random
// streams. They keep appending until the held-open appends have begun,
// and a few appends more, so that appends are always attempted while a
// transaction holds an earlier place in the order.
func (r *esGlobalRun) startWriters(n, each int) {
	for w := 0; w < n; w++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			after := 0
			for i := 0; ; i++ {
				if r.heldBegun.Load() == r.heldWanted {
					after++
				}
				if i >= each && after > 3 {
					break
				}
				if i > 0 && i%5 == 0 {
					time.Sleep(time.Millisecond) // spread the writers over the held-open window
				}
				stream := fmt.Sprintf("%s-%d", r.prefix, rng.IntN(20))
				evs := NewEvents(fmt.Sprintf("%s-w%d-%d", r.prefix, w, i), 1+rng.IntN(3))
				res, err := r.s.Append(r.ctx, stream, es.Any, evs...)
				if err != nil {
					r.t.Errorf("append: %v", err)
					return
				}
				r.record(evs, res)
			}
		}()
	}
}

// after runs fn in a goroutine of the run, after delay.
func (r *esGlobalRun) after(delay time.Duration, fn func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		time.Sleep(delay)
		fn()
	}()
}

// startHeld starts two held-open writers: they take their place in the
// global order, then keep the transaction open for seconds before
// committing.
func (r *esGlobalRun) startHeld(txa es.TxAppender) {
	for h := 0; h < 2; h++ {
		r.after(time.Duration(100+300*h)*time.Millisecond, func() {
			evs := NewEvents(fmt.Sprintf("%s-held%d", r.prefix, h), 3)
			pa, err := txa.BeginAppend(r.ctx, fmt.Sprintf("%s-held-%d", r.prefix, h), es.Any, evs...)
			r.heldBegun.Add(1)
			if err != nil {
				r.t.Errorf("BeginAppend: %v", err)
				return
			}
			time.Sleep(1500 * time.Millisecond)
			res, err := pa.Commit(r.ctx)
			if err != nil {
				r.t.Errorf("commit held append: %v", err)
				return
			}
			r.record(evs, res)
			r.heldCommitted.Add(1)
		})
	}
}

// startRolledBack starts six writers that roll back: some right away, one
// after holding for a second.
func (r *esGlobalRun) startRolledBack(txa es.TxAppender) {
	for i := 0; i < 6; i++ {
		r.after(time.Duration(50+150*i)*time.Millisecond, func() {
			evs := NewEvents(fmt.Sprintf("%s-rb%d", r.prefix, i), 2)
			r.mu.Lock()
			for _, e := range evs {
				r.rolledBack[e.ID()] = true
			}
			r.mu.Unlock()
			pa, err := txa.BeginAppend(r.ctx, fmt.Sprintf("%s-rb-%d", r.prefix, i%3), es.Any, evs...)
			if err != nil {
				r.t.Errorf("BeginAppend: %v", err)
				return
			}
			if i == 5 {
				time.Sleep(time.Second)
			}
			if err := pa.Rollback(r.ctx); err != nil {
				r.t.Errorf("rollback: %v", err)
				return
			}
			r.rolled.Add(1)
		})
	}
}

// check compares what the subscriber got with what was committed, and
// with the global log read afterwards.
func (r *esGlobalRun) check(got []es.RecordedEvent, head uint64) {
	t := r.t
	want := len(r.committed)
	for _, e := range got {
		if r.rolledBack[e.Event.ID()] {
			t.Fatalf("subscription delivered rolled-back event %s", e.Event.ID())
		}
	}
	if len(got) != want {
		t.Fatalf("subscriber got %d events up to the final one; %d were committed", len(got), want)
	}
	var positions []uint64
	for _, e := range got {
		pos, ok := r.committed[e.Event.ID()]
		if !ok {
			t.Fatalf("subscriber got %s, which no append reported", e.Event.ID())
		}
		if pos != e.Position {
			t.Fatalf("%s delivered at position %d; the append reported %d", e.Event.ID(), e.Position, pos)
		}
		positions = append(positions, pos)
	}
	if !slices.IsSorted(positions) {
		t.Fatal("positions not in order")
	}
	// The global log read afterwards holds exactly what the subscriber saw.
	all, err := r.s.ReadAll(r.ctx, head, 0)
	if err != nil {
		t.Fatal(err)
	}
	var logged int
	for _, e := range all {
		if strings.HasPrefix(e.StreamID, r.prefix) {
			logged++
		}
	}
	if logged != want {
		t.Fatalf("ReadAll holds %d of the test's events; the subscriber got %d", logged, want)
	}
	t.Logf("%d events committed (%d held-open appends, %d rolled back) delivered in order", want, r.heldCommitted.Load(), r.rolled.Load())
}

// TestSnapshotStore runs the conformance suite for an es.SnapshotStore.
func TestSnapshotStore(t *testing.T, newStore func(t *testing.T) es.SnapshotStore) {
	ctx := context.Background()
	t.Run("MissingIsNotOK", func(t *testing.T) {
		s := newStore(t)
		if _, ok, err := s.LoadSnapshot(ctx, UniqueName("none-")); err != nil || ok {
			t.Fatalf("LoadSnapshot(missing) ok=%v err=%v; want false, nil", ok, err)
		}
	})
	t.Run("SaveLoadReplace", func(t *testing.T) {
		s := newStore(t)
		stream := UniqueName("snap-")
		at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		for _, v := range []uint64{10, 20} {
			want := es.Snapshot{StreamID: stream, Version: v, SchemaVersion: 3, Data: []byte(fmt.Sprintf(`{"v":%d}`, v)), RecordedAt: at}
			if err := s.SaveSnapshot(ctx, want); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.LoadSnapshot(ctx, stream)
			if err != nil || !ok {
				t.Fatalf("LoadSnapshot = ok %v, %v", ok, err)
			}
			if got.StreamID != stream || got.Version != v || got.SchemaVersion != 3 || string(got.Data) != string(want.Data) || !got.RecordedAt.Equal(at) {
				t.Fatalf("LoadSnapshot = %+v; want %+v", got, want)
			}
		}
		if _, ok, _ := s.LoadSnapshot(ctx, stream+"-other"); ok {
			t.Fatal("a snapshot of another stream was returned")
		}
	})
}

// BenchmarkEventStoreReadAll fills s with total events, appended 500 at a
// time to streams streams (newEvent makes them), then replays the global
// log in pages of 1000, b.N times, and reports the events read per second.
func BenchmarkEventStoreReadAll(b *testing.B, s es.EventStore, total, streams int, newEvent func(id string) event.Event) {
	ctx := context.Background()
	batch := make([]event.Event, 500)
	for i := 0; i < total/len(batch); i++ {
		for j := range batch {
			batch[j] = newEvent(fmt.Sprintf("e%d-%d", i, j))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("s%d", i%streams), es.Any, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	read := 0
	for i := 0; i < b.N; i++ {
		var after uint64
		for {
			page, err := s.ReadAll(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += len(page)
			after = page[len(page)-1].Position
		}
	}
	b.StopTimer()
	if read != b.N*total {
		b.Fatalf("read %d events; want %d", read, b.N*total)
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")
}
