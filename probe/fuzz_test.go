package probe_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/probe"
)

// FuzzMermaid: whatever an event's values, the diagram has one line per
// participant and per event, and no statement separator or comment an
// event could inject.
func FuzzMermaid(f *testing.F) {
	f.Add("order.created", "1", "/shop", "orders", "o-1")
	f.Add("a;b", "x\ny", "%%{init}%%", "t#1", "participant p9")
	f.Fuzz(func(t *testing.T, typ, id, source, topic, subject string) {
		e := event.New()
		e.SetType(typ)
		e.SetID(id)
		e.SetSource(source)
		e.SetSubject(subject)
		b, err := e.MarshalJSON()
		if err != nil {
			t.Skip()
		}
		tl := probe.Timeline{Key: probe.Key{Subject: subject}, Items: []probe.Item{{Position: "1", Topic: topic, Stored: time.Unix(1, 0), Event: b}}}
		m := tl.Mermaid()
		lines := strings.Split(strings.TrimSuffix(m, "\n"), "\n")
		// sequenceDiagram, title, the participants, then the arrow (or a
		// note for an undecodable event).
		if len(lines) < 4 || len(lines) > 5 || lines[0] != "sequenceDiagram" || !strings.HasPrefix(lines[1], "    title ") {
			t.Fatalf("diagram:\n%s", m)
		}
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "    p1->>p2: ") && !strings.HasPrefix(last, "    Note over p1: ") {
			t.Fatalf("last line %q", last)
		}
		for _, l := range lines[2 : len(lines)-1] {
			if !strings.HasPrefix(l, "    participant p") {
				t.Fatalf("line %q", l)
			}
		}
		for _, l := range lines[1:] {
			if strings.Contains(l, "%%") || strings.Count(l, ";") != strings.Count(l, "#") {
				t.Fatalf("line %q", l)
			}
		}
	})
}
