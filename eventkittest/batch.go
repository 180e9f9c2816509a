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
	fail := f.Redelivery
	const n, keys = 60, 6
	var mu sync.Mutex
	seen := map[string]int{}    // id -> deliveries
	handled := map[string]int{} // id -> successful handlings
	next := map[string]int{}    // key -> next seq expected
	var problems []string
	largest := 0
	h := eventkit.BatchHandlerFunc(func(_ context.Context, msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(msgs))
		for _, m := range msgs {
			id := m.Event.ID()
			seq, _ := strconv.Atoi(id[1:])
			seen[id]++
			if f.OrderPerKey && seen[id] == 1 {
				// First deliveries come in publish order; redeliveries
				// of failed messages come in between.
				k := m.Key()
				want, ok := next[k]
				if !ok {
					want, _ = strconv.Atoi(k[1:])
				}
				if seq != want {
					problems = append(problems, fmt.Sprintf("key %s: %s where seq %d was due", k, id, want))
				}
				next[k] = seq + keys
			}
			if failed.KeyFailed(m.Key()) {
				continue // the Router nacks it: it comes back after the failed one
			}
			if fail && seq%4 == 1 && seen[id] == 1 {
				failed.Fail(m, errors.New("the first delivery fails"))
				continue
			}
			handled[id]++
		}
		return failed.Err()
	})
	r := eventkit.NewRouter(e.sub, eventkit.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		eventkit.WithRedeliveryBackoff(10*time.Millisecond, 50*time.Millisecond))
	err := r.HandleBatch(tp, h, eventkit.BatchSize(16), eventkit.BatchWait(20*time.Millisecond),
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
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == n
	})
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout())
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range handled {
		// A persistent transport may redeliver an acked event (at least
		// once), but not in this short, undisturbed run.
		if c != 1 {
			t.Errorf("%s handled %d times", id, c)
		}
	}
	if len(problems) > 0 {
		t.Errorf("order per key: %v", problems)
	}
	if largest < 2 {
		t.Errorf("the largest batch held %d message: nothing was batched", largest)
	}
}
