package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/pipeline"
)

// customerEvent is an order of customer c.
func customerEvent(id, c string) event.Event {
	e := eventkittest.NewEvent(id)
	_ = e.SetData(event.ApplicationJSON, map[string]any{"order": id, "customer": c})
	return e
}

// crm is an HTTP service of customers: c1 exists, c-down answers 500,
// c-slow answers after 2s; it counts its requests.
func crm(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch strings.TrimPrefix(r.URL.Path, "/customers/") {
		case "c1":
			_, _ = w.Write([]byte(`{"name":"Ada","tier":"gold","limit":100}`))
		case "c-down":
			w.WriteHeader(http.StatusInternalServerError)
		case "c-slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// An enrich stage adds the customer to the data and its tier as an
// attribute; a second event of the same customer is served by the cache.
// A customer not found, a service down and a lookup past its timeout each
// meet their policy: dropped (counted), dead-lettered, passed on.
func TestEnrich(t *testing.T) {
	srv, calls := crm(t)
	b := bus(t)
	dlq, err := b.Subscribe(context.Background(), "in.dlq")
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	lookup := pipeline.HTTPLookup(srv.URL+"/customers/{key}", nil, nil)
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Enrich("customer", pipeline.Enrichment{
			Key: pipeline.DataField("customer"), Lookup: lookup,
			Into: "customer", Attributes: map[string]string{"tier": "tier"},
			Timeout: 100 * time.Millisecond, OnMissing: pipeline.Drop,
		}, pipeline.Use(middleware.DeadLetter(b), middleware.Retry(middleware.MaxAttempts(2), middleware.Backoff(time.Millisecond, time.Millisecond, 1))))).
		Then(pipeline.Enrich("slow", pipeline.Enrichment{
			Key: func(e event.Event) (string, error) {
				if e.ID() == "o5" {
					return "c-slow", nil
				}
				return "", nil
			}, Lookup: lookup, Into: "slow", Timeout: 50 * time.Millisecond, OnError: pipeline.Pass, OnMissing: pipeline.Pass,
		})).
		Then(c.sink("out"))
	start(t, p)
	ctx := context.Background()
	for _, e := range []event.Event{customerEvent("o1", "c1"), customerEvent("o2", "c1"), customerEvent("o3", "nobody"),
		customerEvent("o4", "c-down"), customerEvent("o5", "c1")} {
		if err := b.Publish(ctx, "in", e); err != nil {
			t.Fatal(err)
		}
	}
	m := eventkittest.Receive(t, dlq, 10*time.Second)
	if m.Event.ID() != "o4" || !strings.Contains(stringExt(m.Event, "dlqerror"), "500") {
		t.Fatalf("dead letter %s (%v), want o4 with the 500", m.Event.ID(), m.Event.Extensions())
	}
	eventually(t, "o1, o2 and o5 out, every source message acked", func() bool {
		return c.len() == 3 && stats(t, p, "source").Out == 5
	})
	for _, e := range c.snapshot() {
		var d struct {
			Customer struct{ Name string } `json:"customer"`
		}
		if err := json.Unmarshal(e.Data(), &d); err != nil || d.Customer.Name != "Ada" || stringExt(e, "tier") != "gold" {
			t.Errorf("%s not enriched: %s %v (%v)", e.ID(), e.Data(), e.Extensions(), err)
		}
	}
	if st := stats(t, p, "customer"); st.Skipped != 1 {
		t.Errorf("customer stage skipped %d, want 1 (o3 dropped)", st.Skipped)
	}
	if st := stats(t, p, "slow"); st.Skipped != 3 {
		t.Errorf("slow stage skipped %d, want 3 (o1 and o2 without key, o5 timed out)", st.Skipped)
	}
	// c1 once (o2 and o5 from the cache), nobody once, c-down twice (retry), c-slow once.
	if n := calls.Load(); n != 5 {
		t.Errorf("the service got %d requests, want 5", n)
	}
}

func stringExt(e event.Event, name string) string {
	v, _ := e.Extensions()[name].(string)
	return v
}

// A failed lookup under the default policy fails the event: its source
// message is nacked, never acked.
func TestEnrichFailureNacks(t *testing.T) {
	b := bus(t)
	var c collector
	var n atomic.Int64
	p := pipeline.New(pipeline.WithRedeliveryBackoff(time.Millisecond, time.Millisecond))
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Enrich("e", pipeline.Enrichment{
			Key: func(e event.Event) (string, error) { return e.ID(), nil },
			Lookup: func(context.Context, string) (map[string]any, bool, error) {
				if n.Add(1) == 1 {
					return nil, false, errors.New("down")
				}
				return map[string]any{"x": 1}, true, nil
			},
			Attributes: map[string]string{"x": "x"},
		})).
		Then(c.sink("out"))
	start(t, p)
	if err := b.Publish(context.Background(), "in", eventkittest.NewEvent("a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a out after its redelivery", func() bool { return c.len() == 1 })
	if st := stats(t, p, "source"); st.Failed != 1 {
		t.Fatalf("source nacked %d, want 1", st.Failed)
	}
	if got := stringExt(c.snapshot()[0], "x"); got != "1" {
		t.Fatalf("x = %q", got)
	}
}
