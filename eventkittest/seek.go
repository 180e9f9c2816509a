package eventkittest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// testSeek runs on a transport that declares eventkit.CapStartAtTime or
// eventkit.CapStartAtPosition. Two batches of events of one key are
// published some milliseconds apart, then:
//   - a group that starts at the oldest event gets them all, in order, each
//     with a Position; the positions increase strictly (ComparePositions);
//   - a new group that starts at a time between the batches (StartAt) gets
//     exactly the second batch, in order;
//   - a new group that starts at the position of the k-th event
//     (StartAtPosition) gets it and what follows, in order;
//   - the first group, stopped and moved with eventkit.Seeker (to a
//     position, to the time, to the start), replays from there.
func testSeek(t *testing.T, factory Factory, f Features) {
	e := newEnv(t, factory, f)
	caps := eventkit.CapabilitiesOf(e.sub)
	byTime, byPos := caps.Has(eventkit.CapStartAtTime), caps.Has(eventkit.CapStartAtPosition)
	if !byTime && !byPos {
		t.Skip("the transport declares neither start-at-time nor start-at-position")
	}
	tp := e.topic("seek")
	first, second := seekBatch("s1", 5), seekBatch("s2", 5)
	e.publish(tp, first...)
	// Every event of the first batch is stored before mid (Publish
	// returned), every one of the second after it; the margins cover a
	// broker that keeps times in milliseconds.
	mid := time.Now().Truncate(time.Millisecond).Add(10 * time.Millisecond)
	for time.Now().Before(mid.Add(10 * time.Millisecond)) {
		time.Sleep(2 * time.Millisecond)
	}
	e.publish(tp, second...)
	all := append(append([]event.Event(nil), first...), second...)

	g := eventkittestGroup(e, "seek")
	s := e.subscribe(tp, eventkit.WithGroup(g), eventkit.FromStart())
	msgs := e.receive(s, len(all))
	e.inOrder("from the start", msgs, all)
	pos := make([]string, len(msgs))
	for i, m := range msgs {
		pos[i] = m.Position
		if m.Position == "" {
			t.Fatalf("event %s has no Position", m.Event.ID())
		}
		if i > 0 && ComparePositions(pos[i-1], pos[i]) >= 0 {
			t.Fatalf("positions do not increase: %q then %q", pos[i-1], pos[i])
		}
	}
	e.quiet(s, 200*time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	const k = 3
	if byTime {
		e.startsAt("StartAt between the batches", tp, eventkittestGroup(e, "seek-time"), eventkit.StartAt(mid), second)
	}
	if byPos {
		e.startsAt("StartAtPosition of event "+strconv.Itoa(k), tp, eventkittestGroup(e, "seek-pos"), eventkit.StartAtPosition(pos[k]), all[k:])
	}

	sk, ok := e.sub.(eventkit.Seeker)
	if !ok {
		t.Fatalf("the subscriber (%T) declares %s and is no eventkit.Seeker", e.sub, caps)
	}
	seekTo := func(what string, to eventkit.SubscribeOption, want []event.Event) {
		t.Helper()
		if err := sk.Seek(e.ctx, tp, g, to); err != nil {
			t.Fatalf("Seek(%s): %v", what, err)
		}
		e.startsAt("the group moved by Seek("+what+")", tp, g, nil, want)
	}
	if byPos {
		seekTo("position of event 7", eventkit.StartAtPosition(pos[7]), all[7:])
	}
	if byTime {
		seekTo("the time between the batches", eventkit.StartAt(mid), second)
	}
	if caps.Has(eventkit.CapFromStart) {
		seekTo("the start", eventkit.FromStart(), all)
	}
	if byPos {
		const bad = "not-a-position"
		if s, err := e.sub.Subscribe(e.ctx, tp, eventkit.WithGroup(eventkittestGroup(e, "seek-bad")), eventkit.StartAtPosition(bad)); !errors.Is(err, eventkit.ErrInvalidOption) {
			if err == nil {
				_ = s.Close()
			}
			t.Errorf("Subscribe with StartAtPosition(%q): %v, want an error wrapping ErrInvalidOption", bad, err)
		}
		if err := sk.Seek(e.ctx, tp, g, eventkit.StartAtPosition(bad)); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("Seek to StartAtPosition(%q): %v, want an error wrapping ErrInvalidOption", bad, err)
		}
	}
}

// startsAt subscribes group to tp (with the option start, unless nil),
// checks that it gets exactly want, in order, and closes the subscription.
func (e *env) startsAt(what, tp, group string, start eventkit.SubscribeOption, want []event.Event) {
	e.t.Helper()
	opts := []eventkit.SubscribeOption{eventkit.WithGroup(group)}
	if start != nil {
		opts = append(opts, start)
	}
	s := e.subscribe(tp, opts...)
	e.inOrder(what, e.receive(s, len(want)), want)
	e.quiet(s, 300*time.Millisecond)
	if err := s.Close(); err != nil {
		e.t.Fatalf("%s: Close: %v", what, err)
	}
}

// inOrder checks that msgs carry the events of want, in that order.
func (e *env) inOrder(what string, msgs []*eventkit.Message, want []event.Event) {
	e.t.Helper()
	for i, m := range msgs {
		if m.Event.ID() != want[i].ID() {
			got := make([]string, len(msgs))
			for j, m := range msgs {
				got[j] = m.Event.ID()
			}
			e.t.Fatalf("%s: got %s, want %s first", what, strings.Join(got, ","), want[0].ID())
		}
	}
}

// seekBatch returns n events of one key (so one partition), numbered.
func seekBatch(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = NewEvent(prefix + "-" + strconv.Itoa(i))
		evs[i].SetExtension("partitionkey", "seek")
	}
	return evs
}

// ComparePositions orders two Message.Position values of one key (or
// partition) of a transport, by the convention the transports of this
// module follow: a position is a series of decimal numbers with
// separators ("42", "0:17", "1700000000000-3"), compared number by number.
// It returns -1, 0 or +1; a position with a field that is not a number
// compares as a string.
func ComparePositions(a, b string) int {
	fa, fb := positionFields(a), positionFields(b)
	if fa == nil || fb == nil {
		return strings.Compare(a, b)
	}
	for i := 0; i < len(fa) && i < len(fb); i++ {
		if fa[i] != fb[i] {
			if fa[i] < fb[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(fa) < len(fb):
		return -1
	case len(fa) > len(fb):
		return 1
	}
	return 0
}

// positionFields returns the numbers of a position, or nil when a field
// is not a number.
func positionFields(p string) []uint64 {
	parts := strings.FieldsFunc(p, func(r rune) bool { return r == ':' || r == '-' || r == '.' || r == ',' })
	if len(parts) == 0 {
		return nil
	}
	out := make([]uint64, len(parts))
	for i, s := range parts {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil
		}
		out[i] = n
	}
	return out
}
