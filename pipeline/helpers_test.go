package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bus returns a memory bus closed at the end of the test.
func bus(t *testing.T) *memory.Bus {
	t.Helper()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// keyed returns a test event with the given id and partition key.
func keyed(id, key string) event.Event {
	e := eventkittest.NewEvent(id)
	e.SetExtension(eventkit.PartitionKeyExtension, key)
	return e
}

// publishN publishes n events "e0".."e<n-1>" to topic.
func publishN(t *testing.T, pub eventkit.Publisher, topic string, n int) {
	t.Helper()
	for i := range n {
		if err := pub.Publish(context.Background(), topic, eventkittest.NewEvent(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// collector is a sink that records what reaches it.
type collector struct {
	mu     sync.Mutex
	events []event.Event
}

func (c *collector) sink(name string, opts ...pipeline.Option) *pipeline.Stage {
	return pipeline.Sink(name, func(_ context.Context, e event.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.events = append(c.events, e)
		return nil
	}, opts...)
}

func (c *collector) snapshot() []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event.Event(nil), c.events...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// eventually polls cond until it holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// start starts p and shuts it down at the end of the test.
func start(t *testing.T, p *pipeline.Pipeline) {
	t.Helper()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// stats returns the named stage's stats.
func stats(t *testing.T, p *pipeline.Pipeline, name string) pipeline.StageStats {
	t.Helper()
	for _, s := range p.Stats() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in %+v", name, p.Stats())
	return pipeline.StageStats{}
}

// ids returns the ids of evs.
func ids(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID()
	}
	return out
}

// flow starts a pipeline from the topic "in" of a new memory bus through s
// to a collecting sink "end" (redelivery after 1ms), and returns the
// pipeline, the bus and the sink's collector.
func flow(t *testing.T, s *pipeline.Stage) (*pipeline.Pipeline, *memory.Bus, *collector) {
	t.Helper()
	b := bus(t)
	c := &collector{}
	p := pipeline.New(pipeline.WithRedeliveryBackoff(time.Millisecond, time.Millisecond))
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).Then(s).Then(c.sink("end"))
	start(t, p)
	return p, b, c
}
