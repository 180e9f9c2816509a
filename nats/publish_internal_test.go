package nats

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventkit/eventkit/topic"
)

// declaredStreamStores matches with topic.Match, which must agree with
// streamFor's subjectCovers on every topic (a subject without wildcards).
func TestTopicMatchAgreesWithSubjectCovers(t *testing.T) {
	filters := []string{">", "*", "a", "a.>", "a.*", "a.b", "a.*.c", "*.b", "*.>", "a.b.>", "events.>", "ab", "a.b.c.d"}
	topics := []string{"a", "b", "ab", "a.b", "a.c", "a.b.c", "a.x.c", "a.b.c.d", "events", "events.orders", "events.orders.created", "x.b", "a.b.c.d.e"}
	for _, f := range filters {
		for _, s := range topics {
			if got, want := topic.Match(f, s), subjectCovers(f, s); got != want {
				t.Errorf("topic.Match(%q, %q) = %v, subjectCovers = %v", f, s, got, want)
			}
		}
	}
}

func BenchmarkEncodeMsg(b *testing.B) {
	b.ReportAllocs()
	e := testEvent()
	for b.Loop() {
		m, src, err := encodeMsg("events.bench", e, Binary, 1)
		if err != nil {
			b.Fatal(err)
		}
		m.Header[HeaderMsgID] = []string{DefaultMsgID("events.bench", e.ID(), src)}
	}
}

func testEvent() event.Event {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("/bench")
	e.SetType("bench.event")
	e.SetDataContentType("application/json")
	e.DataEncoded = []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	return e
}
