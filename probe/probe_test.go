package probe_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/probe"
)

func ev(id, typ, corr string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("https://shop.example.com/orders")
	e.SetType(typ)
	if corr != "" {
		e.SetExtension(probe.ExtCorrelationID, corr)
	}
	_ = e.SetData("application/json", map[string]string{"note": "<script>alert(1)</script>"})
	return e
}

func item(t *testing.T, pos int, topic string, at time.Time, e event.Event) probe.Item {
	t.Helper()
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return probe.Item{Position: strconv.Itoa(pos), Topic: topic, Stored: at, Event: b}
}

// fixed is a Source answering its items that match the key.
func fixed(items ...probe.Item) probe.Source {
	return probe.SourceFunc(func(_ context.Context, q probe.Query) ([]probe.Item, bool, error) {
		var out []probe.Item
		for _, it := range items {
			e, _ := eventkit.UnmarshalEvent(it.Event)
			if q.Key.Match(&e) && q.InRange(it.Stored) {
				out = append(out, it)
			}
		}
		return out, false, nil
	})
}

func TestRunOrdersAndMerges(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	topics := fixed(
		item(t, 3, "shipping", t0.Add(2*time.Second), ev("3", "shipment.created", "c-1")),
		item(t, 1, "orders", t0, ev("1", "order.created", "c-1")),
		item(t, 2, "payments", t0.Add(time.Second), ev("2", "payment.taken", "c-1")),
		item(t, 4, "orders", t0.Add(time.Second), ev("4", "order.created", "c-2")),
	)
	// The event store holds event 1 again (same source and id).
	store := fixed(item(t, 1, "es:order-1", t0.Add(time.Millisecond), ev("1", "order.created", "c-1")))
	tl, err := probe.Run(context.Background(), probe.Query{Key: probe.Key{CorrelationID: "c-1"}}, topics, store)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range tl.Items {
		got = append(got, it.Topic)
	}
	if strings.Join(got, ",") != "orders,payments,shipping" {
		t.Fatalf("timeline %v", got)
	}
	tl, _ = probe.Run(context.Background(), probe.Query{Key: probe.Key{CorrelationID: "c-1"}, Limit: 2}, topics)
	if len(tl.Items) != 2 || !tl.Truncated {
		t.Errorf("limit 2: %d items, truncated %v", len(tl.Items), tl.Truncated)
	}
	tl, _ = probe.Run(context.Background(), probe.Query{Key: probe.Key{CorrelationID: "c-1"}, Since: t0.Add(time.Second)}, topics)
	if len(tl.Items) != 2 {
		t.Errorf("since: %d items", len(tl.Items))
	}
	if _, err := probe.Run(context.Background(), probe.Query{Key: probe.Key{Subject: "a", Aggregate: "b"}}); err != probe.ErrNoKey {
		t.Errorf("two keys: %v", err)
	}
}

func TestMermaidEscapes(t *testing.T) {
	e := ev("1\nparticipant x", "a;b:c#d", "c-1")
	tl := probe.Timeline{Key: probe.Key{CorrelationID: "c-1"}, Items: []probe.Item{item(t, 1, "orders", time.Now(), e)}}
	m := tl.Mermaid()
	lines := strings.Split(strings.TrimSpace(m), "\n")
	if lines[0] != "sequenceDiagram" || len(lines) != 5 {
		t.Fatalf("diagram:\n%s", m)
	}
	arrow := lines[4]
	if !strings.HasPrefix(arrow, "    p1->>p2: ") || strings.ContainsAny(strings.TrimPrefix(arrow, "    p1->>p2: "), ";:\n") && !strings.Contains(arrow, "#59;") {
		t.Errorf("arrow %q", arrow)
	}
	if strings.Count(m, ";") != strings.Count(m, "#") {
		t.Errorf("an unescaped ';' in\n%s", m)
	}
}

// tagRef finds, in a tag, what a browser would load or follow.
var tagRef = regexp.MustCompile(`(?i)<[a-z][^>]*\b(src|href|action|srcset|data)\s*=`)

func TestHTMLIsSelfContained(t *testing.T) {
	t0 := time.Now()
	tl := probe.Timeline{Key: probe.Key{CorrelationID: "c-1"}, Items: []probe.Item{
		item(t, 1, "orders", t0, ev("1", "order.created", "c-1")),
		item(t, 2, "pay<ments", t0.Add(time.Second), ev("2", `"><img src=https://evil.example/x>`, "c-1")),
	}}
	var b bytes.Buffer
	if err := tl.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if loc := tagRef.FindStringIndex(page); loc != nil {
		t.Errorf("the page references something: %q", page[loc[0]:loc[1]])
	}
	for _, s := range []string{"://", "url(", "@import"} {
		if i := strings.Index(page, s); i >= 0 {
			t.Errorf("the page holds %q: %q", s, page[max(0, i-40):min(len(page), i+40)])
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") {
		t.Error("an event's value reached the page unescaped")
	}
	if !strings.Contains(page, "Content-Security-Policy") || !strings.Contains(page, "order.created") {
		t.Error("page without its policy or its events")
	}
}

func TestEventStoreSource(t *testing.T) {
	ctx := context.Background()
	st := memory.NewEventStore()
	if _, err := st.Append(ctx, "order-1", es.NoStream, ev("1", "order.created", "c-1"), ev("2", "order.paid", "c-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "order-2", es.NoStream, ev("3", "order.created", "c-2")); err != nil {
		t.Fatal(err)
	}
	src := probe.EventStoreSource(st, 0)
	for _, tc := range []struct {
		key  probe.Key
		want string
	}{
		{probe.Key{Aggregate: "order-1"}, "1,2"},
		{probe.Key{CorrelationID: "c-2"}, "3"},
	} {
		tl, err := probe.Run(ctx, probe.Query{Key: tc.key}, src)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range tl.Items {
			e, _ := eventkit.UnmarshalEvent(it.Event)
			ids = append(ids, e.ID())
			if !strings.HasPrefix(it.Topic, "es:order-") {
				t.Errorf("topic %q", it.Topic)
			}
		}
		if strings.Join(ids, ",") != tc.want {
			t.Errorf("%v: %v, want %s", tc.key, ids, tc.want)
		}
	}
}

// TestRunKeepsCopiesWithinASource: a re-driven event is stored again under
// its id; both copies are part of the flow.
func TestRunKeepsCopiesWithinASource(t *testing.T) {
	t0 := time.Now()
	e := ev("1", "order.created", "c-1")
	again := e.Clone()
	again.SetExtension("redrivecount", int32(1))
	src := fixed(item(t, 1, "orders", t0, e), item(t, 3, "orders", t0.Add(time.Second), again))
	tl, err := probe.Run(context.Background(), probe.Query{Key: probe.Key{CorrelationID: "c-1"}}, src)
	if err != nil || len(tl.Items) != 2 {
		t.Fatalf("%d items, %v", len(tl.Items), err)
	}
}
