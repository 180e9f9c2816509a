package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/pipeline"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total,omitempty"`
}

type priced struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
	Big   bool   `json:"big"`
}

// A typed map, a filter and a publish: every event that passes reaches the
// output topic, transformed, and every source message is acked.
func TestLinearTypedPipeline(t *testing.T) {
	b := bus(t)
	out, err := b.Subscribe(context.Background(), "out")
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in", Produces: []pipeline.EventType{{Type: "dev.eventkit.test"}}}).
		Then(pipeline.Typed("price", "dev.eventkit.test", "dev.eventkit.priced", func(_ context.Context, o order) (priced, error) {
			n := len(o.ID)
			return priced{ID: o.ID, Total: n * 10, Big: n > 2}, nil
		}, pipeline.Workers(4))).
		Then(pipeline.Filter("big", func(e event.Event) (bool, error) {
			var p priced
			err := e.DataAs(&p)
			return p.Big, err
		})).
		Then(pipeline.Publish("out", b, "out"))
	start(t, p)
	publishN(t, b, "in", 20) // e0..e9 are small, e10..e19 big
	var got []string
	for len(got) < 10 {
		select {
		case m := <-out.Messages():
			var pr priced
			if err := m.Event.DataAs(&pr); err != nil || m.Event.Type() != "dev.eventkit.priced" || pr.Total != 30 {
				t.Fatalf("output %s: type %q data %s (%v)", m.Event.ID(), m.Event.Type(), m.Event.Data(), err)
			}
			got = append(got, m.Event.ID())
			_ = m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v; want e10..e19", got)
		}
	}
	slices.Sort(got)
	if want := []string{"e10", "e11", "e12", "e13", "e14", "e15", "e16", "e17", "e18", "e19"}; !slices.Equal(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	eventually(t, "every source message acked", func() bool { return stats(t, p, "source").Out == 20 })
	if s := stats(t, p, "big"); s.In != 20 || s.Out != 10 {
		t.Fatalf("filter stats %+v; want In 20, Out 10", s)
	}
}

// Contracts between stages are checked when the pipeline is built: a type
// no downstream stage consumes, or another dataschema, is refused with the
// names of both stages.
func TestContractMismatchRefusedAtBuild(t *testing.T) {
	b := bus(t)
	ty := func(name string) pipeline.EventType { return pipeline.EventType{Type: name} }
	noop := func(context.Context, order) (order, error) { return order{}, nil }
	for _, c := range []struct {
		name  string
		build func(p *pipeline.Pipeline)
		want  []string
	}{
		{"type", func(p *pipeline.Pipeline) {
			p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
				Then(pipeline.Typed("a", "x", "y", noop)).
				Then(pipeline.Typed("b", "z", "w", noop)).
				Then(pipeline.Discard("end"))
		}, []string{`stage "b" consumes [z] but ["a"] produces "y"`}},
		{"source", func(p *pipeline.Pipeline) {
			p.From(pipeline.Source{Subscriber: b, Pattern: "in", Produces: []pipeline.EventType{ty("x"), ty("q")}}).
				Then(pipeline.Typed("a", "x", "y", noop)).
				Then(pipeline.Discard("end"))
		}, []string{`stage "a" consumes [x] but ["source"] produces "q"`}},
		{"through filter", func(p *pipeline.Pipeline) {
			p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
				Then(pipeline.Typed("a", "x", "y", noop)).
				Then(pipeline.Filter("f", func(event.Event) (bool, error) { return true, nil })).
				Then(pipeline.Discard("end", pipeline.Consumes(ty("x"))))
		}, []string{`stage "end" consumes [x] but ["f"] produces "y"`}},
		{"dataschema", func(p *pipeline.Pipeline) {
			p.From(pipeline.Source{Subscriber: b, Pattern: "in", Produces: []pipeline.EventType{{Type: "x", DataSchema: "s1"}}}).
				Then(pipeline.Discard("end", pipeline.Consumes(pipeline.EventType{Type: "x", DataSchema: "s2"})))
		}, []string{`stage "end" consumes "x" with dataschema "s2" but ["source"] produces it with dataschema "s1"`}},
		{"shape", func(p *pipeline.Pipeline) {
			src := p.From(pipeline.Source{Subscriber: b, Pattern: "in"})
			src.Then(pipeline.Typed("a", "x", "y", noop))
			src.Then(pipeline.Discard("end")).Then(pipeline.Discard("after"))
			src.Then(pipeline.Route("r", func(event.Event) string { return "" })).Then(pipeline.Discard("bad"))
			p.From(pipeline.Source{Subscriber: b, Pattern: "x", Name: "lonely"})
		}, []string{
			`stage "a" ends its branch`, `sink "end" has stages after it`,
			`stage "bad" follows the Route stage "r"`, `source "lonely" has no stage after it`,
		}},
		{"options", func(p *pipeline.Pipeline) {
			p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
				Then(pipeline.Batch("b", 0, 0, nil, pipeline.Workers(2), pipeline.OrderedByKey())).
				Then(pipeline.Discard("end", pipeline.Workers(0)))
		}, []string{
			`batch size must be at least 1`, `batch wait must be positive`, `an ordered batch stage needs Workers(1)`,
			`stage "end": workers must be at least 1`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pipeline.New()
			c.build(p)
			err := p.Build()
			if err == nil {
				t.Fatal("Build accepted the pipeline")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Build error %q does not say %q", err, w)
				}
			}
			if err := p.Run(context.Background()); err == nil {
				t.Fatal("Run accepted the pipeline")
			}
		})
	}
}

// At run time an event of a type the stage does not consume, and an output
// it does not declare, fail with a permanent *ContractError: dead-letter
// middleware takes them at once.
func TestContractCheckedAtRunTime(t *testing.T) {
	b := bus(t)
	dlq, err := b.Subscribe(context.Background(), "dlq")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	dl := middleware.DeadLetter(b, middleware.DeadLetterTopic(func(string) string { return "dlq" }))
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Map("m", func(_ context.Context, e event.Event) (event.Event, error) {
			calls.Add(1)
			if e.ID() == "bad-out" {
				e.SetType("undeclared")
			}
			return e, nil
		}, pipeline.Consumes(pipeline.EventType{Type: "dev.eventkit.test"}),
			pipeline.Produces(pipeline.EventType{Type: "dev.eventkit.test"}), pipeline.Use(dl, middleware.Retry()))).
		Then(pipeline.Discard("end"))
	start(t, p)
	wrong := eventkittest.NewEvent("bad-in")
	wrong.SetType("other")
	for _, e := range []event.Event{wrong, eventkittest.NewEvent("bad-out")} {
		if err := b.Publish(context.Background(), "in", e); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-dlq.Messages():
			if m.Event.ID() != e.ID() {
				t.Fatalf("dead letter %s; want %s", m.Event.ID(), e.ID())
			}
			_ = m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not dead-lettered", e.ID())
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the stage function ran %d times; want 1 (never for the wrong input, no retry of a contract error)", n)
	}
	eventually(t, "both source messages acked", func() bool { return stats(t, p, "source").Out == 2 })
}

// With OrderedByKey on every stage, the events of one key leave in the
// order they came, though each stage has several workers.
func TestOrderPerKeyAcrossStages(t *testing.T) {
	b := bus(t)
	var c collector
	jitter := func(_ context.Context, e event.Event) (event.Event, error) {
		// uneven work, so that unordered workers would overtake each other
		for range int(keyHashForTest(e.ID()) % 2000) {
			_ = e.ID()
		}
		return e, nil
	}
	p := pipeline.New(pipeline.WithQueue(8))
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Map("one", jitter, pipeline.Workers(4), pipeline.OrderedByKey())).
		Then(pipeline.Map("two", jitter, pipeline.Workers(3), pipeline.OrderedByKey())).
		Then(c.sink("end", pipeline.Workers(4), pipeline.OrderedByKey()))
	start(t, p)
	const keys, per = 8, 50
	for i := range per {
		for k := range keys {
			if err := b.Publish(context.Background(), "in", keyed(fmt.Sprintf("k%d-%03d", k, i), fmt.Sprint("k", k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "every event out", func() bool { return c.len() == keys*per })
	last := map[string]string{}
	for _, e := range c.snapshot() {
		k := eventkit.EventKey(e)
		if e.ID() <= last[k] {
			t.Fatalf("key %s: %s after %s", k, e.ID(), last[k])
		}
		last[k] = e.ID()
	}
}

func keyHashForTest(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// Batches close at their size, or after their wait, or when the pipeline
// drains.
func TestBatchBySizeAndTime(t *testing.T) {
	run := func(t *testing.T, size int, wait time.Duration, n int) (*pipeline.Pipeline, *collector, chan int) {
		b := bus(t)
		var c collector
		sizes := make(chan int, 10)
		p := pipeline.New()
		p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
			Then(pipeline.Batch("batch", size, wait, func(_ context.Context, evs []event.Event) ([]event.Event, error) {
				sizes <- len(evs)
				return evs, nil
			})).
			Then(c.sink("end"))
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		publishN(t, b, "in", n)
		return p, &c, sizes
	}
	t.Run("size, then the drain", func(t *testing.T) {
		p, c, sizes := run(t, 10, time.Hour, 25) // the wait never ends a batch here
		// Every event taken (a drain takes no more), two batches out.
		eventually(t, "25 taken, 20 out", func() bool { return stats(t, p, "source").In == 25 && c.len() == 20 })
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		close(sizes)
		var got []int
		for n := range sizes {
			got = append(got, n)
		}
		if !slices.Equal(got, []int{10, 10, 5}) || c.len() != 25 {
			t.Fatalf("batch sizes %v, %d out; want [10 10 5], 25", got, c.len())
		}
		if s := stats(t, p, "source"); s.Out != 25 {
			t.Fatalf("source %+v; want 25 acked", s)
		}
	})
	t.Run("time", func(t *testing.T) {
		p, c, sizes := run(t, 100, 20*time.Millisecond, 3) // never full
		defer p.Shutdown(context.Background())
		// Out before any drain, though no batch can fill: the wait ended
		// them (one batch, or more if the publisher was slow).
		eventually(t, "3 events out", func() bool { return c.len() == 3 })
		for total := 0; total < 3; {
			total += <-sizes
		}
	})
}

// Several Then on one node fan out, each branch with its own copy; Merge
// fans in.
func TestFanOutFanIn(t *testing.T) {
	b := bus(t)
	var c collector
	tag := func(name string) *pipeline.Stage {
		return pipeline.Map(name, func(_ context.Context, e event.Event) (event.Event, error) {
			e.SetExtension("branch", name)
			e.SetID(e.ID() + "/" + name)
			return e, nil
		})
	}
	p := pipeline.New()
	src := p.From(pipeline.Source{Subscriber: b, Pattern: "in"})
	pipeline.Merge(c.sink("end"), src.Then(tag("left")), src.Then(tag("right")))
	start(t, p)
	publishN(t, b, "in", 10)
	eventually(t, "20 events out", func() bool { return c.len() == 20 })
	for _, e := range c.snapshot() {
		if br := e.Extensions()["branch"]; !strings.HasSuffix(e.ID(), fmt.Sprint("/", br)) {
			t.Fatalf("event %s carries branch %v: the branches share an event", e.ID(), br)
		}
	}
	eventually(t, "every source message acked", func() bool { return stats(t, p, "source").Out == 10 })
}

// Route sends each event to the case its key names, else to the default.
func TestRoute(t *testing.T) {
	b := bus(t)
	var a, d collector
	p := pipeline.New()
	r := p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Route("by-id", func(e event.Event) string { return e.ID()[:2] }))
	r.Case("e1", a.sink("ones"))
	r.Default(d.sink("others"))
	start(t, p)
	publishN(t, b, "in", 20)
	eventually(t, "20 events out", func() bool { return a.len()+d.len() == 20 })
	for _, e := range a.snapshot() {
		if !strings.HasPrefix(e.ID(), "e1") {
			t.Fatalf("%s routed to ones", e.ID())
		}
	}
	if n := a.len(); n != 11 { // e1, e10..e19
		t.Fatalf("ones got %d: %v", n, ids(a.snapshot()))
	}
}

// A failing stage nacks the source message, which the transport
// redelivers; the event reaches the output on the next attempt, and only
// then is the message acked.
func TestFailureNacksSourceMessage(t *testing.T) {
	var fails atomic.Int32
	p, b, c := flow(t, pipeline.Map("flaky", func(_ context.Context, e event.Event) (event.Event, error) {
		if e.ID() == "e3" && fails.Add(1) <= 2 {
			return e, errors.New("not yet")
		}
		return e, nil
	}))
	publishN(t, b, "in", 5)
	eventually(t, "5 events out", func() bool { return c.len() == 5 })
	eventually(t, "5 acks", func() bool { return stats(t, p, "source").Out == 5 })
	if s := stats(t, p, "source"); s.Failed != 2 || s.In != 7 {
		t.Fatalf("source stats %+v; want 7 taken, 2 nacked", s)
	}
	if s := stats(t, p, "flaky"); s.Failed != 2 {
		t.Fatalf("stage stats %+v; want 2 failed", s)
	}
}

// Per-stage middleware: Retry retries in place, DeadLetter keeps what Retry
// gives up on and acks the source message.
func TestStageMiddlewareRetryAndDeadLetter(t *testing.T) {
	b := bus(t)
	dlq, err := b.Subscribe(context.Background(), "dlq")
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	var calls atomic.Int32
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Map("broken", func(_ context.Context, e event.Event) (event.Event, error) {
			if e.ID() == "e1" {
				calls.Add(1)
				return e, errors.New("always")
			}
			return e, nil
		}, pipeline.Use(
			middleware.DeadLetter(b, middleware.DeadLetterTopic(func(string) string { return "dlq" })),
			middleware.Retry(middleware.MaxAttempts(3), middleware.Backoff(time.Millisecond, time.Millisecond, 1)),
		))).
		Then(c.sink("end"))
	start(t, p)
	publishN(t, b, "in", 3)
	select {
	case m := <-dlq.Messages():
		if m.Event.ID() != "e1" {
			t.Fatalf("dead letter %s", m.Event.ID())
		}
		_ = m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	eventually(t, "3 acks", func() bool { return stats(t, p, "source").Out == 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("e1 tried %d times; want 3", n)
	}
	if got := ids(c.snapshot()); !slices.Equal(got, []string{"e0", "e2"}) {
		t.Fatalf("output %v; want [e0 e2]", got)
	}
	if s := stats(t, p, "source"); s.Failed != 0 {
		t.Fatalf("source stats %+v: nothing should be nacked", s)
	}
}

// A panic in a stage, with or without middleware around it, fails the
// event (its source message is nacked and redelivered), never the
// process.
func TestPanicInStageNacks(t *testing.T) {
	passThrough := func(next eventkit.Handler) eventkit.Handler { return next }
	for name, opts := range map[string][]pipeline.Option{"direct": nil, "middleware": {pipeline.Use(passThrough)}} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int32
			p, b, c := flow(t, pipeline.Map("boom", func(_ context.Context, e event.Event) (event.Event, error) {
				if e.ID() == "e1" && calls.Add(1) == 1 {
					panic("boom")
				}
				return e, nil
			}, opts...))
			publishN(t, b, "in", 3)
			eventually(t, "3 events out", func() bool { return c.len() == 3 })
			if s := stats(t, p, "source"); s.Failed != 1 {
				t.Fatalf("source stats %+v; want 1 nacked", s)
			}
		})
	}
}

// A feed's Publish returns only after the sink took every event, and
// returns the stage's error when one failed, so that the producer sends
// again: nothing is acked that did not reach the end.
func TestFeedPublishWaitsForTheSink(t *testing.T) {
	feed := pipeline.NewFeed()
	t.Cleanup(func() { _ = feed.Close() })
	var c collector
	release := make(chan struct{})
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: feed, Pattern: ">"}).
		Then(pipeline.Map("gate", func(_ context.Context, e event.Event) (event.Event, error) {
			<-release
			if e.ID() == "bad" {
				return e, errors.New("lookup down")
			}
			return e, nil
		})).
		Then(c.sink("out"))
	start(t, p)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- feed.Publish(ctx, "in", eventkittest.NewEvent("a"), eventkittest.NewEvent("b")) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v before the stage handled its events", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ids(c.snapshot()); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("sink got %v", got)
	}
	err := feed.Publish(ctx, "in", eventkittest.NewEvent("c"), eventkittest.NewEvent("bad"))
	if err == nil || !strings.Contains(err.Error(), "lookup down") {
		t.Fatalf("Publish of a failing event: %v; want the stage's error", err)
	}
	if feed.Held() != 0 {
		t.Fatalf("feed holds %d events after every Publish returned", feed.Held())
	}
}

// A full feed refuses at once with FeedWait(0): the caller can answer 429
// instead of holding the request; room made by the pipeline is usable
// again.
func TestFeedFullRefuses(t *testing.T) {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(2), pipeline.FeedWait(0))
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- feed.Publish(ctx, "in", eventkittest.NewEvent("a"), eventkittest.NewEvent("b")) }()
	eventually(t, "two events held", func() bool { return feed.Held() == 2 })
	err := feed.Publish(ctx, "in", eventkittest.NewEvent("c"))
	var ra *eventkit.RetryAfterError
	if !errors.Is(err, pipeline.ErrFull) || !errors.As(err, &ra) {
		t.Fatalf("Publish into a full feed: %v; want ErrFull with a retry delay", err)
	}
	// No subscription took them: Close fails them, and Publish says so.
	if err := feed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish of events a closed feed dropped: %v; want ErrClosed", err)
	}
	if err := feed.Publish(ctx, "in", eventkittest.NewEvent("d")); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// A feed's subscriber finds the pushed events waiting, so that it can take
// several in one go (a pipeline hands them on as one batch); the events a
// closed subscription's consumer did not take go, in order, to the next
// subscription, and Publish returns nil once that one acked them.
func TestFeedKeepsWhatASubscriptionLeft(t *testing.T) {
	feed := pipeline.NewFeed()
	t.Cleanup(func() { _ = feed.Close() })
	ctx := context.Background()
	sub, err := feed.Subscribe(ctx, ">")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- feed.Publish(ctx, "in", eventkittest.NewEvent("a"), eventkittest.NewEvent("b"), eventkittest.NewEvent("c"))
	}()
	eventually(t, "three events waiting", func() bool { return len(sub.Messages()) == 3 })
	first := <-sub.Messages()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Ack(); err != nil {
		t.Fatal(err)
	}
	next, err := feed.Subscribe(ctx, ">")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	var got []string
	for range 2 {
		m := <-next.Messages()
		got = append(got, m.Event.ID())
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[b c]" {
		t.Fatalf("the next subscription got %v; want [b c]", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Publish = %v; want nil once every event was acked", err)
	}
}

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
	var n atomic.Int64
	p, b, c := flow(t, pipeline.Enrich("e", pipeline.Enrichment{
		Key: func(e event.Event) (string, error) { return e.ID(), nil },
		Lookup: func(context.Context, string) (map[string]any, bool, error) {
			if n.Add(1) == 1 {
				return nil, false, errors.New("down")
			}
			return map[string]any{"x": 1}, true, nil
		},
		Attributes: map[string]string{"x": "x"},
	}))
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
