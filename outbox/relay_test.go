package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is an in-memory outbox.Store for the relay's unit tests (the
// real stores are tested in packages postgres and sqlite).
type memStore struct {
	mu      sync.Mutex
	parts   int
	next    int64
	rows    []outbox.Record
	owner   map[int]string
	expires map[int]time.Time
	marks   atomic.Int64
}

func newMemStore(parts int) *memStore {
	return &memStore{parts: parts, owner: map[int]string{}, expires: map[int]time.Time{}}
}

func (s *memStore) write(topic string, evs ...event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		s.next++
		s.rows = append(s.rows, outbox.Record{ID: s.next, Partition: outbox.PartitionOf(e, s.parts), Topic: topic, Event: e})
	}
}

func (s *memStore) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rows)
}

func (s *memStore) Partitions() int { return s.parts }

func (s *memStore) Claim(_ context.Context, owner string, ttl time.Duration) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var held []int
	now := time.Now()
	for p := range s.parts {
		if s.owner[p] == owner || s.expires[p].Before(now) {
			s.owner[p], s.expires[p] = owner, now.Add(ttl)
			held = append(held, p)
		}
	}
	return held, nil
}

func (s *memStore) Release(_ context.Context, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.owner {
		if o == owner {
			delete(s.owner, p)
			delete(s.expires, p)
		}
	}
	return nil
}

func (s *memStore) Fetch(_ context.Context, cursors []outbox.Cursor, limit int) ([]outbox.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []outbox.Record
	for _, r := range s.rows {
		i := slices.IndexFunc(cursors, func(c outbox.Cursor) bool { return c.Partition == r.Partition })
		if i >= 0 && r.ID > cursors[i].After && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) MarkDelivered(_ context.Context, owner string, recs []outbox.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks.Add(1)
	lost := 0
	for _, r := range recs {
		if s.owner[r.Partition] != owner {
			lost++
			continue
		}
		s.rows = slices.DeleteFunc(s.rows, func(x outbox.Record) bool { return x.ID == r.ID })
	}
	if lost > 0 {
		return fmt.Errorf("%d rows: %w", lost, outbox.ErrLeaseLost)
	}
	return nil
}

func keyed(id, key string) event.Event {
	e := eventkittest.NewEvent(id)
	e.SetExtension("partitionkey", key)
	return e
}

func collect(t *testing.T, bus *memory.Bus) (eventkit.Subscription, func(n int) []string) {
	t.Helper()
	s, err := bus.Subscribe(context.Background(), "app.>", eventkit.WithBuffer(10000))
	if err != nil {
		t.Fatal(err)
	}
	return s, func(n int) []string {
		t.Helper()
		var ids []string
		timeout := time.After(30 * time.Second)
		for len(ids) < n {
			select {
			case m := <-s.Messages():
				_ = m.Ack()
				ids = append(ids, m.Event.ID())
			case <-timeout:
				t.Fatalf("got %d of %d events", len(ids), n)
			}
		}
		return ids
	}
}

// newRelay returns a relay with opts, or fails t.
func newRelay(t *testing.T, st outbox.Store, pub eventkit.Publisher, opts ...outbox.RelayOption) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(st, pub, opts...)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	return r
}

func TestRelayOrderPerKeyAndMark(t *testing.T) {
	st := newMemStore(4)
	bus := memory.New()
	defer bus.Close()
	sub, take := collect(t, bus)
	defer sub.Close()
	for i := range 100 {
		st.write("app.orders", keyed("k"+strconv.Itoa(i%3)+"-"+strconv.Itoa(i), "k"+strconv.Itoa(i%3)))
	}
	stop := eventkittest.RunRelay(t, newRelay(t, st, bus, outbox.WithBatchSize(7), outbox.WithPollInterval(10*time.Millisecond)))
	defer stop()
	ids := take(100)
	next := map[string]int{}
	for _, id := range ids {
		var k, i int
		if _, err := fmt.Sscanf(id, "k%d-%d", &k, &i); err != nil {
			t.Fatal(err)
		}
		key := strconv.Itoa(k)
		if i < next[key] {
			t.Fatalf("key %s: %s after a later event", key, id)
		}
		next[key] = i
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows not marked", st.pending())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRelayRetriesWhileBrokerDown(t *testing.T) {
	st := newMemStore(1)
	pub := &eventkittest.RecordingPublisher{}
	pub.Down.Store(true)
	for i := range 10 {
		st.write("app.x", keyed(strconv.Itoa(i), "k"))
	}
	r := newRelay(t, st, pub, outbox.WithBackoff(time.Millisecond, 20*time.Millisecond),
		outbox.WithPollInterval(5*time.Millisecond), outbox.WithLogger(slog.New(slog.DiscardHandler)))
	stop := eventkittest.RunRelay(t, r)
	defer stop()
	eventkittest.WaitFor(t, 10*time.Second, "the relay retries", func() bool { return pub.Fails.Load() >= 5 })
	if st.pending() != 10 {
		t.Fatalf("rows marked while the broker was down: %d pending", st.pending())
	}
	pub.Down.Store(false)
	eventkittest.WaitFor(t, 10*time.Second, "every row marked", func() bool { return st.pending() == 0 })
	for i, e := range pub.Events() {
		if e.ID() != strconv.Itoa(i) {
			t.Fatalf("position %d: %s", i, e.ID())
		}
	}
	if n := len(pub.Events()); n != 10 {
		t.Fatalf("%d events published; want 10", n)
	}
	if r.Stats().PublishErrors < 5 || r.Stats().Published != 10 {
		t.Fatalf("stats %+v", r.Stats())
	}
}

func TestRelayReleasesOnStop(t *testing.T) {
	st := newMemStore(2)
	bus := memory.New()
	defer bus.Close()
	r := newRelay(t, st, bus, outbox.WithOwner("one"), outbox.WithPollInterval(5*time.Millisecond))
	stop := eventkittest.RunRelay(t, r)
	for r.Stats().Partitions != 2 {
		time.Sleep(time.Millisecond)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatalf("a second Run of a running relay succeeded")
	}
	stop()
	held, _ := st.Claim(context.Background(), "two", time.Minute)
	if len(held) != 2 {
		t.Fatalf("after Run returned, another relay got %v", held)
	}
}

// stuckStore is a memStore whose Release and MarkDelivered wait for the
// end of their context, as on a store that stopped answering.
type stuckStore struct {
	*memStore
	published chan struct{} // closed by the first MarkDelivered
	once      sync.Once
}

func (s *stuckStore) Release(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *stuckStore) MarkDelivered(ctx context.Context, _ string, _ []outbox.Record) error {
	s.once.Do(func() { close(s.published) })
	<-ctx.Done()
	return ctx.Err()
}

// TestRelayShutdownTimeout: after Run's context ends, the last mark and
// the release of the leases on a store that does not answer are bounded
// by WithShutdownTimeout (they waited a hard-coded 10 s and 5 s before).
func TestRelayShutdownTimeout(t *testing.T) {
	st := &stuckStore{memStore: newMemStore(1), published: make(chan struct{})}
	st.write("r.a", keyed("1", "k"))
	bus := memory.New()
	defer bus.Close()
	r := newRelay(t, st, bus, outbox.WithPollInterval(5*time.Millisecond), outbox.WithShutdownTimeout(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-st.published
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Run took %s to stop, want about the shutdown timeout (50ms)", d)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Run did not stop within 4s of its context's end, with a shutdown timeout of 50ms")
	}
}

// TestRelayRefusesInvalidOptions: each invalid value makes NewRelay fail
// with eventkit.ErrInvalidOption, naming the option (they were ignored
// before).
func TestRelayRefusesInvalidOptions(t *testing.T) {
	st := newMemStore(1)
	bus := memory.New()
	defer bus.Close()
	type bad = eventkittest.BadOption[outbox.RelayOption]
	eventkittest.TestBadOptions(t, func(o outbox.RelayOption) error {
		_, err := outbox.NewRelay(st, bus, outbox.WithOwner("ok"), o)
		return err
	},
		bad{Name: "outbox.WithOwner", Opt: outbox.WithOwner("")},
		bad{Name: "outbox.WithBatchSize", Opt: outbox.WithBatchSize(0)},
		bad{Name: "outbox.WithBatchSize", Opt: outbox.WithBatchSize(-1)},
		bad{Name: "outbox.WithPollInterval", Opt: outbox.WithPollInterval(0)},
		bad{Name: "outbox.WithLeaseTTL", Opt: outbox.WithLeaseTTL(-time.Second)},
		bad{Name: "outbox.WithLeaseTTL", Opt: outbox.WithLeaseTTL(time.Microsecond)},
		bad{Name: "outbox.WithBackoff", Opt: outbox.WithBackoff(0, time.Second)},
		bad{Name: "outbox.WithBackoff", Opt: outbox.WithBackoff(time.Second, time.Millisecond)},
		bad{Name: "outbox.WithPublishTimeout", Opt: outbox.WithPublishTimeout(0)},
		bad{Name: "outbox.WithLogger", Opt: outbox.WithLogger(nil)},
		bad{Name: "outbox.WithPurgeInterval", Opt: outbox.WithPurgeInterval(-time.Minute)},
		bad{Name: "outbox.WithShutdownTimeout", Opt: outbox.WithShutdownTimeout(0)},
	)
	if _, err := outbox.NewRelay(nil, bus); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("NewRelay(nil store) = %v; want ErrInvalidOption", err)
	}
	if _, err := outbox.NewRelay(st, nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("NewRelay(nil publisher) = %v; want ErrInvalidOption", err)
	}
	r := newRelay(t, st, bus, outbox.WithOwner("me"), outbox.WithBatchSize(1), outbox.WithPollInterval(time.Millisecond),
		outbox.WithLeaseTTL(time.Millisecond), outbox.WithBackoff(time.Millisecond, time.Millisecond),
		outbox.WithPublishTimeout(time.Millisecond), outbox.WithLogger(slog.Default()), outbox.WithPurgeInterval(time.Millisecond))
	if r.Owner() != "me" {
		t.Errorf("Owner = %q", r.Owner())
	}
}

func TestPartitionOf(t *testing.T) {
	a, b := keyed("1", "order-7"), keyed("2", "order-7")
	if outbox.PartitionOf(a, 16) != outbox.PartitionOf(b, 16) {
		t.Fatalf("one key, two partitions")
	}
	seen := map[int]bool{}
	for i := range 200 {
		p := outbox.PartitionOf(eventkittest.NewEvent(strconv.Itoa(i)), 16)
		if p < 0 || p >= 16 {
			t.Fatalf("partition %d", p)
		}
		seen[p] = true
	}
	if len(seen) < 8 {
		t.Fatalf("events without a key use only %d partitions", len(seen))
	}
	if outbox.PartitionOf(a, 1) != 0 {
		t.Fatalf("one partition")
	}
}

func ExampleRelay() {
	store := newMemStore(4) // in a service: postgres.NewOutbox or sqlite.NewOutbox
	bus := memory.New()
	defer bus.Close()
	sub, _ := bus.Subscribe(context.Background(), "orders.>")
	defer sub.Close()

	// In the business transaction: outbox.Write(ctx, tx, "orders.created", e).
	store.write("orders.created", keyed("order-1-created", "order-1"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay, err := outbox.NewRelay(store, bus)
		if err != nil {
			panic(err)
		}
		_ = relay.Run(ctx)
	}()
	m := <-sub.Messages()
	_ = m.Ack()
	fmt.Println(m.Topic, m.Event.ID())
	cancel()
	<-done
	// Output: orders.created order-1-created
}
