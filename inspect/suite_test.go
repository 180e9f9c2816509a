package inspect_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/inspect"
)

// env is a transport under test.
type env struct {
	pub eventkit.Publisher
	sub eventkit.Subscriber
	ns  string // a topic prefix of this test alone
	// cut returns a time after every event published so far and before
	// every event published later.
	cut func() time.Time
	// idle is Query.Idle (2s when zero).
	idle time.Duration
	// group is Query.Group for the transports that read only in a group.
	group func() string
}

func (e *env) topic(s string) string { return e.ns + "." + s }

func (e *env) publish(t *testing.T, tp string, evs ...event.Event) {
	t.Helper()
	if err := e.pub.Publish(context.Background(), tp, evs...); err != nil {
		t.Fatal(err)
	}
}

func (e *env) query(q inspect.Query) inspect.Query {
	if q.Topic == "" {
		q.Topic = e.ns + ".>"
	}
	if q.Idle == 0 {
		q.Idle = cmp.Or(e.idle, 2*time.Second)
	}
	if e.group != nil {
		q.Group = e.group()
	}
	return q
}

func (e *env) read(t *testing.T, q inspect.Query) ([]inspect.Item, inspect.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []inspect.Item
	res, err := inspect.Read(ctx, e.sub, e.query(q), func(it inspect.Item) error {
		got = append(got, it)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got, res
}

func newEvent(id, typ, subject string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/inspect-test")
	e.SetType(typ)
	if subject != "" {
		e.SetSubject(subject)
	}
	e.SetExtension("shard", "s"+id[len(id)-1:])
	_ = e.SetData("application/json", map[string]string{"id": id})
	return e
}

func numbered(prefix string, n int, typ string) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = newEvent(fmt.Sprintf("%s%d", prefix, i), typ, fmt.Sprintf("o-%d", i%3))
	}
	return out
}

func ids(items []inspect.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Event.ID()
	}
	return out
}

func evIDs(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID()
	}
	return out
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// testReadReplay runs every read and replay test on one transport.
func testReadReplay(t *testing.T, newEnv func(t *testing.T) *env) {
	t.Run("Read", func(t *testing.T) { testRead(t, newEnv(t)) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, newEnv(t)) })
}

func testRead(t *testing.T, e *env) {
	a := numbered("a", 6, "order.created")
	e.publish(t, e.topic("orders"), a[:3]...)
	e.publish(t, e.topic("other"), a[3:]...)
	cut := e.cut()
	b := numbered("b", 4, "order.paid")
	e.publish(t, e.topic("orders"), b...)
	all := append(slices.Clone(a), b...)

	got, res := e.read(t, inspect.Query{})
	wantIDs(t, "everything", ids(got), evIDs(all))
	if res.More || res.Next == "" || res.Next != got[len(got)-1].Position {
		t.Fatalf("result %+v, want next %q and no more", res, got[len(got)-1].Position)
	}
	for _, it := range got {
		if it.Position == "" || it.Topic == "" {
			t.Fatalf("item without position or topic: %+v", it)
		}
	}
	if got[0].Topic != e.topic("orders") || got[3].Topic != e.topic("other") {
		t.Fatalf("topics %q, %q", got[0].Topic, got[3].Topic)
	}

	got, _ = e.read(t, inspect.Query{Topic: e.topic("orders")})
	wantIDs(t, "one topic", ids(got), append(evIDs(a[:3]), evIDs(b)...))

	got, _ = e.read(t, inspect.Query{Since: cut})
	wantIDs(t, "since", ids(got), evIDs(b))
	got, _ = e.read(t, inspect.Query{Until: cut})
	wantIDs(t, "until", ids(got), evIDs(a))

	got, _ = e.read(t, inspect.Query{Filter: map[string]string{"type": "order.paid", "subject": "o-1"}})
	wantIDs(t, "filter", ids(got), []string{"b1"})
	got, _ = e.read(t, inspect.Query{SQL: "type = 'order.created' AND shard IN ('s1', 's4')"})
	wantIDs(t, "sql", ids(got), []string{"a1", "a4"})

	// Page by page with Limit and After.
	var paged []string
	q := inspect.Query{Limit: 4}
	for range 10 {
		got, res := e.read(t, q)
		paged = append(paged, ids(got)...)
		if !res.More {
			break
		}
		q.After = res.Next
	}
	wantIDs(t, "pages", paged, evIDs(all))
}

// recorder is a publisher that keeps what it gets.
type recorder struct {
	mu     sync.Mutex
	topics []string
	events []event.Event
	after  func(n int) error // called after each publish with the count
}

func (r *recorder) Publish(_ context.Context, tp string, evs ...event.Event) error {
	r.mu.Lock()
	for _, e := range evs {
		r.topics = append(r.topics, tp)
		r.events = append(r.events, e)
	}
	n := len(r.events)
	r.mu.Unlock()
	if r.after != nil {
		return r.after(n)
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func testReplay(t *testing.T, e *env) {
	a := numbered("r", 25, "order.created")
	e.publish(t, e.topic("orders"), a...)
	cut := e.cut()
	e.publish(t, e.topic("orders"), numbered("late", 3, "order.created")...)

	// The first run stops after its second batch.
	file := filepath.Join(t.TempDir(), "replay.json")
	errCut := errors.New("cut")
	to := &recorder{}
	to.after = func(n int) error {
		if n == 10 {
			return errCut
		}
		return nil
	}
	var progress []inspect.Progress
	r := &inspect.Replay{From: inspect.FromSubscriber(e.sub), To: to, ToTopic: "replayed", Rate: 50,
		Save: inspect.FileCheckpoint(file), Progress: func(p inspect.Progress) { progress = append(progress, p) }}
	q := e.query(inspect.Query{Until: cut})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	cp, err := r.Run(ctx, q, nil)
	if !errors.Is(err, errCut) {
		t.Fatalf("first run: %v, want the publisher's error", err)
	}
	// At 50 events/s, batches of 5: the tenth event is not published
	// before 9/50 s.
	if el := time.Since(start); el < 180*time.Millisecond {
		t.Errorf("10 events at 50/s took %s", el)
	}
	if cp.Done != 5 || len(progress) != 1 || progress[0].Done != 5 {
		t.Fatalf("after the cut: checkpoint %+v, progress %+v; want 5 done", cp, progress)
	}
	saved, err := inspect.LoadCheckpoint(file)
	if err != nil || saved.Done != 5 || saved.Position != cp.Position || saved.Finished {
		t.Fatalf("saved checkpoint %+v (%v), want %+v", saved, err, cp)
	}

	// Resumed: the events of the failed batch again, then the rest, once.
	to.after = nil
	r.Rate = 0
	cp, err = r.Run(ctx, inspect.Query{}, saved)
	if err != nil || !cp.Finished || cp.Done != 25 {
		t.Fatalf("resumed: %+v, %v", cp, err)
	}
	got := evIDs(to.events)
	want := append(evIDs(a[:10]), evIDs(a[5:])...)
	wantIDs(t, "replayed (the cut batch twice)", got, want)
	for i, tp := range to.topics {
		if tp != "replayed" {
			t.Fatalf("event %d published to %q", i, tp)
		}
	}
	if to.events[0].Source() != a[0].Source() || string(to.events[0].Data()) != string(a[0].Data()) {
		t.Fatalf("replayed event changed: %v", to.events[0])
	}
	// A finished replay resumed does nothing.
	saved, _ = inspect.LoadCheckpoint(file)
	if cp, err := r.Run(ctx, inspect.Query{}, saved); err != nil || cp.Done != 25 || len(to.events) != 30 {
		t.Fatalf("finished replay resumed: %+v, %v, %d events", cp, err, len(to.events))
	}
}
