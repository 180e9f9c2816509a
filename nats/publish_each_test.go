package nats_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// PublishEach stores every event on its own topic, each topic's events in
// their order, and its re-publication is de-duplicated like Publish's.
func TestPublishEach(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	var topics []string
	var events []event.Event
	for i := 0; i < 30; i++ {
		topics = append(topics, ns+".t"+strconv.Itoa(i%3))
		events = append(events, eventkittest.NewEvent("e"+strconv.Itoa(i)))
	}
	if err := tr.PublishEach(ctx, topics, events); err != nil {
		t.Fatal(err)
	}
	if err := tr.PublishEach(ctx, topics, events); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, tr, ns); n != 30 {
		t.Fatalf("stream holds %d messages, want 30", n)
	}
	s, err := tr.Subscribe(ctx, ns+".>", eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := map[string]int{}
	for range 30 {
		m := take(t, s)
		i, _ := strconv.Atoi(m.Event.ID()[1:])
		if want := ns + ".t" + strconv.Itoa(i%3); m.Topic != want {
			t.Fatalf("event %s on %s, want %s", m.Event.ID(), m.Topic, want)
		}
		want, seen := next[m.Topic]
		if !seen {
			want = i % 3 // the topic's first event
		}
		if i != want {
			t.Fatalf("topic %s: event %d, want %d (out of order)", m.Topic, i, want)
		}
		next[m.Topic] = i + 3
		_ = m.Ack()
	}
}

func TestPublishEachRejects(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	e := eventkittest.NewEvent("x")
	if err := tr.PublishEach(ctx, []string{ns + ".a"}, []event.Event{e, e}); err == nil {
		t.Error("PublishEach with 1 topic for 2 events: no error")
	}
	if err := tr.PublishEach(ctx, []string{ns + ".a", ns + ".*"}, []event.Event{e, e}); err == nil {
		t.Error("PublishEach to a pattern: no error")
	}
	if err := tr.PublishEach(ctx, []string{ns + ".a", "elsewhere.b"}, []event.Event{e, e}); err == nil {
		t.Error("PublishEach to a topic outside the streams: no error")
	}
	if n := streamMsgs(t, tr, ns); n != 0 {
		t.Fatalf("stream holds %d messages after rejected calls, want 0", n)
	}
}
