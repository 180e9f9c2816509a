package eventkittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// testBatchRoute runs a batch route (Router.HandleBatch) with OrderedByKey
// and Concurrency on the transport: every event reaches the handler in a
// batch; with OrderPerKey, a key's events reach it in publish order; with
// Redelivery, the events the handler fails (a partial failure of their
// batch) come back and the others do not.
func testBatchRoute(t *testing.T, factory Factory, f Features) {
	e := newEnv(t, factory, f)
	tp := e.topic("batch")
	const n, keys = 60, 6
	probe := &batchProbe{f: f, keys: keys, seen: map[string]int{}, handled: map[string]int{}, next: map[string]int{}}
	r := eventkit.NewRouter(e.sub, eventkit.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		eventkit.WithRedeliveryBackoff(10*time.Millisecond, 50*time.Millisecond))
	err := r.HandleBatchFunc(tp, probe.handle, eventkit.BatchSize(16), eventkit.BatchWait(20*time.Millisecond),
		eventkit.OrderedByKey(), eventkit.Concurrency(3), eventkit.RouteSubscribeOptions(e.groupOpts("batch")...))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(e.ctx); err != nil {
		t.Fatalf("router: %v", err)
	}
	events := make([]event.Event, n)
	for i := range events {
		events[i] = NewEvent("e" + strconv.Itoa(i))
		events[i].SetExtension(eventkit.PartitionKeyExtension, "k"+strconv.Itoa(i%keys))
	}
	e.publish(tp, events...)
	WaitFor(t, f.timeout(), "every event handled by the batch route", func() bool {
		probe.mu.Lock()
		defer probe.mu.Unlock()
		return len(probe.handled) == n
	})
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout())
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	probe.check(t)
}

// batchProbe is the batch handler of testBatchRoute: it fails the first
// delivery of every fourth event (with Redelivery) and records what it saw.
type batchProbe struct {
	f        Features
	keys     int
	mu       sync.Mutex
	seen     map[string]int // id -> deliveries
	handled  map[string]int // id -> successful handlings
	next     map[string]int // key -> seq expected on its next first delivery
	problems []string
	largest  int
}

func (p *batchProbe) handle(_ context.Context, msgs []*eventkit.Message) error {
	var failed eventkit.BatchError
	p.mu.Lock()
	defer p.mu.Unlock()
	p.largest = max(p.largest, len(msgs))
	for _, m := range msgs {
		id := m.Event.ID()
		seq, _ := strconv.Atoi(id[1:])
		p.seen[id]++
		if p.f.OrderPerKey && p.seen[id] == 1 {
			p.checkOrder(m.Key(), seq)
		}
		if failed.KeyFailed(m.Key()) {
			continue // the Router nacks it: it comes back after the failed one
		}
		if p.f.Redelivery && seq%4 == 1 && p.seen[id] == 1 {
			failed.Fail(m, errors.New("the first delivery fails"))
			continue
		}
		p.handled[id]++
	}
	return failed.Err()
}

// checkOrder checks a first delivery: those come in publish order, the
// redeliveries of failed messages in between.
func (p *batchProbe) checkOrder(key string, seq int) {
	want, ok := p.next[key]
	if !ok {
		want, _ = strconv.Atoi(key[1:])
	}
	if seq != want {
		p.problems = append(p.problems, fmt.Sprintf("key %s: e%d where e%d was due", key, seq, want))
	}
	p.next[key] = seq + p.keys
}

func (p *batchProbe) check(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.handled {
		// A persistent transport may redeliver an acked event (at least
		// once), but not in this short, undisturbed run.
		if c != 1 {
			t.Errorf("%s handled %d times", id, c)
		}
	}
	if len(p.problems) > 0 {
		t.Errorf("order per key: %v", p.problems)
	}
	if p.largest < 2 {
		t.Errorf("the largest batch held %d message: nothing was batched", p.largest)
	}
}
