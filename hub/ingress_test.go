package hub_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
)

// A batch spanning several topics, on the embedded JetStream default, is
// stored whole (in one PublishEach call), each topic's events in order, and
// counted once stored.
func TestEmbeddedBrokerMixedTopicBatch(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	const n = 30
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, `{"specversion":"1.0","id":"`+strconv.Itoa(i)+`","source":"/t","type":"mixed.t`+strconv.Itoa(i%3)+`","data":{"i":`+strconv.Itoa(i)+`}}`)
	}
	resp, err := http.Post(s.URL()+"/events", "application/cloudevents-batch+json", strings.NewReader("["+strings.Join(parts, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"accepted":30}` {
		t.Fatalf("POST batch: %d %s", resp.StatusCode, b)
	}
	sub, ctx := storedFromStart(t, s, "mixed.>")
	next := map[string]int{}
	for got := 0; got < n; got++ {
		var m *eventkit.Message
		select {
		case m = <-sub.Messages():
		case <-ctx.Done():
			t.Fatalf("received %d of %d events", got, n)
		}
		i, _ := strconv.Atoi(m.Event.ID())
		if want := "mixed.t" + strconv.Itoa(i%3); m.Topic != want {
			t.Fatalf("event %d on topic %q, want %q", i, m.Topic, want)
		}
		want, seen := next[m.Topic]
		if !seen {
			want = i % 3
		}
		if i != want {
			t.Fatalf("topic %s: event %d, want %d (out of order)", m.Topic, i, want)
		}
		next[m.Topic] = i + 3
		_ = m.Ack()
	}
	if !strings.Contains(metricsText(t, s.URL()), "eventkit_ingress_events_total 30\n") {
		t.Fatalf("metrics lack eventkit_ingress_events_total 30")
	}
}

// An empty batch is answered 200 {"accepted":0} by the server on its
// embedded broker (it used to panic in the PublishEach path, and the
// connection was dropped with no answer).
func TestEmbeddedBrokerEmptyBatch(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	resp, err := http.Post(s.URL()+"/events", "application/cloudevents-batch+json", strings.NewReader("[]"))
	if err != nil {
		t.Fatalf("POST []: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"accepted":0}` {
		t.Fatalf("POST []: %d %s", resp.StatusCode, b)
	}
}

// An event posted as soon as the server answers reaches a new
// subscription (one that starts with the next event): the server serves
// only once every subscription is in place. Before, it served at once and
// the subscriptions were made alongside, so such an event could be stored
// before the subscription existed and never be delivered to it.
func TestSubscriptionsInPlaceBeforeServing(t *testing.T) {
	hook := newWebhook(t, 0, 0)
	cfg := hub.Config{DataDir: t.TempDir(), Subscriptions: []hub.SubscriptionConfig{
		{Name: "a", Topic: "early.>", URL: hook.srv.URL}, {Name: "b", Topic: "other.>", URL: hook.srv.URL},
		{Name: "c", Topic: "more.>", URL: hook.srv.URL}, {Name: "d", Topic: "early.x", URL: hook.srv.URL},
	}}
	s := start(t, cfg) // returns at the first healthy answer
	if r := postEvent(t, s.URL(), "e-1", "early.x"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	waitFor(t, "the early event delivered by both subscriptions", func() bool { _, n := hook.count(); return n == 2 })
}

// TestBatchBeyondBrokerLimitsStoresNothing: a batch holding one event the
// broker cannot store (a de-duplication header over NATS's 64 KiB, a
// message over its max payload) is refused whole with a 4xx, not 503 with
// a Retry-After no retry can satisfy, and none of its events is stored.
func TestBatchBeyondBrokerLimitsStoresNothing(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	ev := func(id, extra string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/s","type":"limits.t"` + extra + `}`
	}
	for name, c := range map[string]struct {
		bad  string
		want int
	}{
		"70 KiB id":  {ev(strings.Repeat("i", 70<<10), ""), http.StatusRequestHeaderFieldsTooLarge},
		"9 MiB data": {ev("big", `,"data":"`+strings.Repeat("d", 9<<20)+`"`), http.StatusRequestEntityTooLarge},
	} {
		body := "[" + ev("ok-"+name, "") + "," + c.bad + "]"
		resp, err := http.Post(s.URL()+"/events", "application/cloudevents-batch+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || resp.Header.Get("Retry-After") != "" {
			t.Errorf("%s: %d (Retry-After %q) %s, want %d", name, resp.StatusCode, resp.Header.Get("Retry-After"), b, c.want)
		}
	}
	// Nothing of either batch is stored: the first event stored is the
	// sentinel posted after them.
	if r := postEvent(t, s.URL(), "sentinel", "limits.t"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("sentinel: %d", r.StatusCode)
	}
	sub, ctx := storedFromStart(t, s, "limits.t")
	select {
	case m := <-sub.Messages():
		if m.Event.ID() != "sentinel" {
			t.Fatalf("stored from a refused batch: %s", m.Event.ID())
		}
	case <-ctx.Done():
		t.Fatal("sentinel not stored")
	}
}

// TestMaxBytesRefusesNewEvents: at broker.max_bytes the server refuses new
// events with 507 problem+json instead of dropping acknowledged ones:
// every event answered 204 is still stored.
func TestMaxBytesRefusesNewEvents(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10}})
	accepted := map[string]bool{}
	refused := 0
	for i := 0; i < 2000 && refused < 3; i++ {
		id := strconv.Itoa(i)
		switch r := postEvent(t, s.URL(), id, "full.t"); r.StatusCode {
		case http.StatusNoContent:
			accepted[id] = true
		case http.StatusInsufficientStorage:
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("507 with Content-Type %q", ct)
			}
			refused++
		default:
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	if refused == 0 {
		t.Fatalf("%d events accepted into a 64 KiB stream, none refused", len(accepted))
	}
	sub, ctx := storedFromStart(t, s, "full.>")
	for got := 0; got < len(accepted); got++ {
		select {
		case m := <-sub.Messages():
			if !accepted[m.Event.ID()] {
				t.Fatalf("stored event %s was not acknowledged", m.Event.ID())
			}
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("lost: %d of %d acknowledged events stored", got, len(accepted))
		}
	}
}

// TestStoreFullReportedAndRecovered: once the store refuses events,
// /healthz and /readyz answer 503 saying so; when room returns (here:
// retention expires the old events) they answer 200 again and events are
// accepted, without a restart.
func TestStoreFullReportedAndRecovered(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10, Retention: hub.Duration(2 * time.Second)}})
	for i := 0; ; i++ {
		r := postEvent(t, s.URL(), strconv.Itoa(i), "full.t")
		if r.StatusCode == http.StatusInsufficientStorage {
			break
		}
		if r.StatusCode != http.StatusNoContent || i > 5000 {
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := probe(t, s.URL()+path)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "event store full") {
			t.Errorf("%s with the store full: %d %s", path, code, body)
		}
	}
	waitFor(t, "ready again once retention freed room", func() bool {
		code, _ := probe(t, s.URL()+"/readyz")
		return code == http.StatusOK
	})
	if r := postEvent(t, s.URL(), "after", "full.t"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("after recovery: %d", r.StatusCode)
	}
}

func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
