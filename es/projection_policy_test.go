package es_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
)

// appendStreams appends perStream events to each of streams streams
// (s0, s1, ...), round-robin, so that the global log interleaves them; the
// event of stream j with version v has the id "sj-v".
func appendStreams(t *testing.T, store es.EventStore, streams, perStream int) int {
	t.Helper()
	for v := 1; v <= perStream; v++ {
		for j := 0; j < streams; j++ {
			e := event.New()
			e.SetID(fmt.Sprintf("s%d-%d", j, v))
			e.SetSource("/test")
			e.SetType("test.happened")
			if _, err := store.Append(context.Background(), "s"+strconv.Itoa(j), es.Any, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return streams * perStream
}

// recorder is a projection handler that records what it handled and fails
// on the events poison selects.
type recorder struct {
	mu      sync.Mutex
	handled map[string]int
	calls   map[string]int
	poison  func(id string, call int) error
}

func newRecorder(poison func(id string, call int) error) *recorder {
	return &recorder{handled: map[string]int{}, calls: map[string]int{}, poison: poison}
}

func (r *recorder) handle(_ context.Context, ev es.RecordedEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ev.Event.ID()
	r.calls[id]++
	if r.poison != nil {
		if err := r.poison(id, r.calls[id]); err != nil {
			return err
		}
	}
	r.handled[id]++
	return nil
}

func (r *recorder) count(m map[string]int, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[id]
}

var errPoison = errors.New("cannot project this event")

// quiet discards the projections' logs.
var quiet = es.WithProjectionLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// One poison event in the middle of the log: the others are projected, the
// poison is dead-lettered with the error, and the checkpoint advances past
// it; sequential and parallel.
func TestProjectionPoisonIsDeadLettered(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run("parallel="+strconv.Itoa(parallel), func(t *testing.T) {
			ctx := context.Background()
			store, cps, bus := memory.NewEventStore(), memory.NewCheckpointStore(), memory.New()
			defer bus.Close()
			dlq, err := bus.Subscribe(ctx, "projections.dlq")
			if err != nil {
				t.Fatal(err)
			}
			total := appendStreams(t, store, 3, 3) // s1-2 is at position 5
			rec := newRecorder(func(id string, _ int) error {
				if id == "s1-2" {
					return errPoison
				}
				return nil
			})
			policy := es.DeadLetterOnError(bus, "projections.dlq").WithRetry(2, time.Millisecond, 2*time.Millisecond)
			p, err := es.NewProjector("balances", store, cps, rec.handle, quiet, es.WithErrorPolicy(policy), es.WithParallel(parallel))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.CatchUp(ctx); err != nil {
				t.Fatalf("CatchUp: %v", err)
			}
			if n := len(rec.handled); n != total-1 {
				t.Fatalf("%d events projected, want %d", n, total-1)
			}
			if c := rec.count(rec.calls, "s1-2"); c != 3 {
				t.Fatalf("poison handled %d times, want 3 (1 + 2 retries)", c)
			}
			if cp, _, _ := cps.Load(ctx, "balances"); cp != uint64(total) || p.Position() != uint64(total) {
				t.Fatalf("checkpoint %d, position %d, want %d", cp, p.Position(), total)
			}
			if p.DeadLettered() != 1 {
				t.Fatalf("DeadLettered %d, want 1", p.DeadLettered())
			}
			m := eventkittest.Receive(t, dlq, 10*time.Second)
			ext := m.Event.Extensions()
			if m.Event.ID() != "s1-2" || ext["dlqposition"] != "5" || ext["dlqstream"] != "s1" ||
				ext["dlqhandler"] != "balances" || ext["dlqattempts"] != int32(3) || ext["dlqerror"] != errPoison.Error() {
				t.Fatalf("dead letter %s with extensions %v", m.Event.ID(), ext)
			}
		})
	}
}

// StopOnError (the default) stops at the failing event, after the
// retries; the checkpoint stays before it, and the next run handles it.
func TestProjectionStopsOnError(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run("parallel="+strconv.Itoa(parallel), func(t *testing.T) {
			ctx := context.Background()
			store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
			total := appendStreams(t, store, 3, 3)
			var healed atomic.Bool
			rec := newRecorder(func(id string, _ int) error {
				if id == "s1-2" && !healed.Load() {
					return errPoison
				}
				return nil
			})
			opts, wantCalls := []es.ProjectionOption{es.WithParallel(parallel)}, 1
			if parallel == 1 {
				opts, wantCalls = append(opts, es.WithErrorPolicy(es.StopOnError().WithRetry(1, time.Millisecond, time.Millisecond))), 2
			}
			p, err := es.NewProjector("stop", store, cps, rec.handle, append(opts, quiet)...)
			if err != nil {
				t.Fatal(err)
			}
			err = p.CatchUp(ctx)
			if !errors.Is(err, errPoison) || !strings.Contains(err.Error(), "position 5") {
				t.Fatalf("CatchUp: %v, want the poison's error at position 5", err)
			}
			if cp, _, _ := cps.Load(ctx, "stop"); cp >= 5 {
				t.Fatalf("checkpoint %d passed the failed event at 5", cp)
			}
			if c := rec.count(rec.calls, "s1-2"); c != wantCalls {
				t.Fatalf("poison handled %d times, want %d", c, wantCalls)
			}
			healed.Store(true)
			if err := p.CatchUp(ctx); err != nil {
				t.Fatalf("CatchUp after the fix: %v", err)
			}
			if len(rec.handled) != total || rec.count(rec.handled, "s1-2") != 1 {
				t.Fatalf("%d events projected (the poison %d times), want %d", len(rec.handled), rec.count(rec.handled, "s1-2"), total)
			}
			if cp, _, _ := cps.Load(ctx, "stop"); cp != uint64(total) {
				t.Fatalf("checkpoint %d, want %d", cp, total)
			}
		})
	}
}

// RetryOnError waits out a transient failure: nothing is skipped.
func TestProjectionRetriesTransientFailure(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	total := appendStreams(t, store, 2, 2)
	rec := newRecorder(func(id string, call int) error {
		if id == "s0-2" && call <= 3 {
			return errors.New("database unavailable")
		}
		return nil
	})
	p, err := es.NewProjector("retry", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.RetryOnError(time.Millisecond, 4*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.handled) != total || rec.count(rec.calls, "s0-2") != 4 {
		t.Fatalf("%d projected, s0-2 called %d times; want %d and 4", len(rec.handled), rec.count(rec.calls, "s0-2"), total)
	}
}

// A retry without limit ends with the context: Run returns nil, and the
// checkpoint stays before the failing event.
func TestProjectionRetryEndsWithContext(t *testing.T) {
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	appendStreams(t, store, 1, 3)
	failing := make(chan struct{}, 100)
	rec := newRecorder(func(id string, _ int) error {
		if id == "s0-2" {
			failing <- struct{}{}
			return errors.New("down")
		}
		return nil
	})
	p, err := es.NewProjector("retry-ctx", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.RetryOnError(time.Millisecond, time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for i := 0; i < 3; i++ {
		select {
		case <-failing:
		case <-time.After(10 * time.Second):
			t.Fatal("the failing event was not retried")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if cp, _, _ := cps.Load(context.Background(), "retry-ctx"); cp != 1 {
		t.Fatalf("checkpoint %d, want 1", cp)
	}
}

// Permanent errors and panics are not retried: the last step applies at
// once.
func TestProjectionPermanentErrorsAndPanicsNotRetried(t *testing.T) {
	for name, fail := range map[string]func() error{
		"permanent": func() error { return eventkit.Permanent(errPoison) },
		"panic":     func() error { panic("bad event") },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store, cps, bus := memory.NewEventStore(), memory.NewCheckpointStore(), memory.New()
			defer bus.Close()
			dlq, err := bus.Subscribe(ctx, "dlq")
			if err != nil {
				t.Fatal(err)
			}
			total := appendStreams(t, store, 1, 3)
			rec := newRecorder(func(id string, _ int) error {
				if id == "s0-2" {
					return fail()
				}
				return nil
			})
			policy := es.DeadLetterOnError(bus, "dlq").WithRetry(5, time.Hour, time.Hour)
			p, err := es.NewProjector("perm", store, cps, rec.handle, quiet, es.WithErrorPolicy(policy))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if rec.count(rec.calls, "s0-2") != 1 || len(rec.handled) != total-1 {
				t.Fatalf("s0-2 called %d times, %d projected", rec.count(rec.calls, "s0-2"), len(rec.handled))
			}
			m := eventkittest.Receive(t, dlq, 10*time.Second)
			if s, _ := m.Event.Extensions()["dlqerror"].(string); !strings.Contains(s, map[string]string{"permanent": errPoison.Error(), "panic": "bad event"}[name]) {
				t.Fatalf("dlqerror %q", s)
			}
		})
	}
}

// failingPublisher refuses every publish.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, string, ...event.Event) error {
	return errors.New("broker down")
}
func (failingPublisher) Close() error { return nil }

// A dead letter that cannot be published stops the projection: no event is
// skipped without a record.
func TestProjectionStopsWhenDeadLetterFails(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	appendStreams(t, store, 1, 3)
	rec := newRecorder(func(id string, _ int) error {
		if id == "s0-2" {
			return errPoison
		}
		return nil
	})
	p, err := es.NewProjector("dlq-down", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.DeadLetterOnError(failingPublisher{}, "dlq")))
	if err != nil {
		t.Fatal(err)
	}
	err = p.CatchUp(ctx)
	if !errors.Is(err, errPoison) || !strings.Contains(err.Error(), "broker down") {
		t.Fatalf("CatchUp: %v, want the handler's and the publisher's errors", err)
	}
	if cp, _, _ := cps.Load(ctx, "dlq-down"); cp != 1 || p.DeadLettered() != 0 {
		t.Fatalf("checkpoint %d, dead-lettered %d; want 1 and 0", cp, p.DeadLettered())
	}
}

// WithParallel: the events of one stream are handled in order, one at a
// time; different streams at once; each event once; the checkpoint ends
// at the head.
func TestProjectionParallelByStream(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	const streams, per = 7, 40 // 7 streams on 4 workers: a stream's positions fall on every residue
	total := appendStreams(t, store, streams, per)
	var mu sync.Mutex
	last := map[string]uint64{}
	busy := map[string]bool{}
	var problems []string
	var inFlight atomic.Int32
	concurrent := make(chan struct{})
	var once sync.Once
	handled := 0
	handler := func(_ context.Context, r es.RecordedEvent) error {
		mu.Lock()
		if busy[r.StreamID] {
			problems = append(problems, "two events of "+r.StreamID+" at once")
		}
		busy[r.StreamID] = true
		if r.Version != last[r.StreamID]+1 {
			problems = append(problems, fmt.Sprintf("%s: version %d after %d", r.StreamID, r.Version, last[r.StreamID]))
		}
		last[r.StreamID] = r.Version
		handled++
		mu.Unlock()
		if inFlight.Add(1) >= 2 {
			once.Do(func() { close(concurrent) })
		}
		if r.Version == 1 {
			// The first event of each stream waits until two handlers run
			// at once: the streams are handled concurrently.
			select {
			case <-concurrent:
			case <-time.After(10 * time.Second):
				mu.Lock()
				problems = append(problems, "no two streams handled at once")
				mu.Unlock()
			}
		}
		inFlight.Add(-1)
		mu.Lock()
		busy[r.StreamID] = false
		mu.Unlock()
		return nil
	}
	p, err := es.NewProjector("parallel", store, cps, handler, quiet, es.WithParallel(4), es.WithCheckpointEvery(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %v", len(problems), problems[:min(5, len(problems))])
	}
	if handled != total {
		t.Fatalf("handled %d, want %d", handled, total)
	}
	if cp, _, _ := cps.Load(ctx, "parallel"); cp != uint64(total) {
		t.Fatalf("checkpoint %d, want %d", cp, total)
	}
}

func TestProjectorBadOptions(t *testing.T) {
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	h := func(context.Context, es.RecordedEvent) error { return nil }
	cases := map[string]struct {
		opt  es.ProjectionOption
		want string
	}{
		"parallel 0":            {es.WithParallel(0), "WithParallel"},
		"nil key":               {es.WithProjectionKey(nil), "WithProjectionKey"},
		"nil dead-letter pub":   {es.WithErrorPolicy(es.DeadLetterOnError(nil, "dlq")), "DeadLetterOnError"},
		"bad dead-letter topic": {es.WithErrorPolicy(es.DeadLetterOnError(memory.New(), "a..b")), "DeadLetterOnError"},
		"retry initial 0":       {es.WithErrorPolicy(es.RetryOnError(0, time.Second)), "RetryOnError"},
		"retry max below":       {es.WithErrorPolicy(es.StopOnError().WithRetry(3, time.Second, time.Millisecond)), "WithRetry"},
		"negative retries":      {es.WithErrorPolicy(es.StopOnError().WithRetry(-1, time.Second, time.Second)), "WithRetry"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := es.NewProjector("p", store, cps, h, c.opt)
			if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewProjector: %v, want an invalid %s", err, c.want)
			}
		})
	}
	_, err := es.NewProjector("p", store, cps, h, es.WithParallel(2), es.WithHandlerCheckpoint())
	if !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Fatalf("WithParallel and WithHandlerCheckpoint: %v, want ErrInvalidOption", err)
	}
	if _, err := es.NewProjector("p", store, cps, nil); err == nil {
		t.Fatal("NewProjector with a nil handler: no error")
	}
}
