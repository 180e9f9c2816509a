package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
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
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func outboxTestURL(t testing.TB) string { return pgtest.URL(t) }

func outboxTestPool(t testing.TB) *pgxpool.Pool { return pgtest.Pool(t) }

// outboxTestStore creates an outbox on its own tables, dropped at the end.
func outboxTestStore(t testing.TB, pool *pgxpool.Pool, opts ...OutboxOption) *Outbox {
	t.Helper()
	name := eventkittest.UniqueName("ekob_")
	o, err := NewOutbox(pool, append([]OutboxOption{OutboxTable(name)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s, %s, %s`, o.table, o.leases, o.relays, o.archive))
	})
	return o
}

func outboxTestEvent(id, key string, seq int) event.Event {
	e := eventkittest.NewEvent(id)
	if key != "" {
		e.SetExtension("partitionkey", key)
	}
	e.SetExtension("seq", int32(seq))
	return e
}

// outboxCollector subscribes to a memory bus and records every delivery.
type outboxCollector struct {
	mu   sync.Mutex
	got  []event.Event
	sub  eventkit.Subscription
	done chan struct{}
}

func newOutboxCollector(t *testing.T, bus *memory.Bus, pattern string) *outboxCollector {
	t.Helper()
	s, err := bus.Subscribe(context.Background(), pattern, eventkit.WithBuffer(4096))
	if err != nil {
		t.Fatal(err)
	}
	c := &outboxCollector{sub: s, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for m := range s.Messages() {
			_ = m.Ack()
			c.mu.Lock()
			c.got = append(c.got, m.Event)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = s.Close(); <-c.done })
	return c
}

func (c *outboxCollector) snapshot() []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event.Event(nil), c.got...)
}

// distinct waits until the collector holds n distinct event ids.
func (c *outboxCollector) waitDistinct(t *testing.T, n int, timeout time.Duration) []event.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.snapshot()
		seen := map[string]bool{}
		for _, e := range got {
			seen[e.ID()] = true
		}
		if len(seen) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d distinct events of %d within %s", len(seen), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outboxSeq(t *testing.T, e event.Event) int {
	t.Helper()
	v, ok := e.Extensions()["seq"]
	if !ok {
		t.Fatalf("event %s has no seq", e.ID())
	}
	switch x := v.(type) {
	case int32:
		return int(x)
	case string:
		n, err := strconv.Atoi(x)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("seq of %s is %T", e.ID(), v)
	return 0
}

func outboxRunRelay(t *testing.T, r *outbox.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Relay.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestOutboxWriteCommitAndRollback(t *testing.T) {
	pool := outboxTestPool(t)
	o := outboxTestStore(t, pool)
	ctx := context.Background()
	full := eventkittest.NewEvent("committed-1")
	full.SetSubject("order/1")
	full.SetExtension("extint", 7)
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return o.Write(ctx, tx, "ob.orders", full, outboxTestEvent("committed-2", "", 0))
	}); err != nil {
		t.Fatalf("Write in a committed tx: %v", err)
	}
	errRollback := errors.New("business rule failed")
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := o.Write(ctx, tx, "ob.orders", outboxTestEvent("rolled-back", "", 0)); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatalf("rolled back tx: %v", err)
	}
	// An invalid event writes nothing of the call.
	bad := eventkittest.NewEvent("")
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return o.Write(ctx, tx, "ob.orders", outboxTestEvent("good-before-bad", "", 0), bad)
	})
	var ve *eventkit.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Write of an invalid event: got %v, want a *eventkit.ValidationError", err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return o.Write(ctx, tx, "ob.*", outboxTestEvent("x", "", 0))
	}); err == nil {
		t.Fatalf("Write to a pattern succeeded")
	}
	if n, err := o.Pending(ctx); err != nil || n != 2 {
		t.Fatalf("Pending = %d, %v; want 2", n, err)
	}

	bus := memory.New()
	defer bus.Close()
	c := newOutboxCollector(t, bus, "ob.>")
	r := outbox.NewRelay(o, bus, outbox.WithPollInterval(50*time.Millisecond))
	outboxRunRelay(t, r)
	got := c.waitDistinct(t, 2, 30*time.Second)
	if got[0].ID() != "committed-1" || got[1].ID() != "committed-2" {
		t.Fatalf("got %s, %s; want committed-1, committed-2 in order", got[0].ID(), got[1].ID())
	}
	if d := eventkittest.DiffEvents(full, got[0]); d != "" {
		t.Errorf("event changed through the outbox: %s", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := o.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still pending after delivery", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if got := c.snapshot(); len(got) != 2 {
		t.Fatalf("published %d events, want 2 (the rolled-back one must not exist)", len(got))
	}
}

// TestOutboxConcurrentTransactions runs 16 concurrent business transactions
// streams with random rollbacks under two relays: exactly the committed
// events are published, once each, in commit order per key.
func TestOutboxConcurrentTransactions(t *testing.T) {
	pool := outboxTestPool(t)
	o := outboxTestStore(t, pool)
	ctx := context.Background()
	biz := pgx.Identifier{eventkittest.UniqueName("ekob_biz_")}.Sanitize()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+biz+` (id text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+biz) })

	bus := memory.New()
	defer bus.Close()
	c := newOutboxCollector(t, bus, "ob.>")
	for i := range 2 {
		r := outbox.NewRelay(o, bus, outbox.WithOwner(fmt.Sprintf("relay-%d", i)), outbox.WithPollInterval(100*time.Millisecond))
		outboxRunRelay(t, r)
	}

	const writers, txEach = 16, 25
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 9))
			seq := 0
			key := fmt.Sprintf("key-%d", w)
			for i := range txEach {
				n := 1 + rnd.IntN(3)
				var evs []event.Event
				for j := range n {
					evs = append(evs, outboxTestEvent(fmt.Sprintf("w%d-t%d-e%d", w, i, j), key, seq+j))
				}
				rollback := rnd.IntN(3) == 0
				errRB := errors.New("rollback")
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO `+biz+` VALUES ($1)`, fmt.Sprintf("w%d-t%d", w, i)); err != nil {
						return err
					}
					if err := o.Write(ctx, tx, "ob.orders", evs...); err != nil {
						return err
					}
					if rollback {
						return errRB
					}
					return nil
				})
				if rollback {
					if !errors.Is(err, errRB) {
						errs <- err
						return
					}
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				seq += n
				mu.Lock()
				for _, e := range evs {
					committed[e.ID()] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("business transaction: %v", err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+biz).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d committed events in %d committed transactions", len(committed), rows)
	c.waitDistinct(t, len(committed), 60*time.Second)
	time.Sleep(300 * time.Millisecond) // let a late extra show
	got := c.snapshot()
	count := map[string]int{}
	last := map[string]int{}
	for _, e := range got {
		count[e.ID()]++
		if count[e.ID()] > 1 {
			continue // deduplicated
		}
		if !committed[e.ID()] {
			t.Errorf("published %s, which was never committed", e.ID())
		}
		k := eventkit.EventKey(e)
		s := outboxSeq(t, e)
		prev, ok := last[k]
		if !ok {
			prev = -1
		}
		if s != prev+1 {
			t.Errorf("key %s: seq %d after %d (commit order broken)", k, s, prev)
		}
		last[k] = s
	}
	for id := range committed {
		if count[id] == 0 {
			t.Errorf("committed event %s never published", id)
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("event %s published %d times with no crash (two relays must not overlap)", id, n)
		}
	}
}

// outboxFlakyPublisher fails every Publish while down is set.
type outboxFlakyPublisher struct {
	eventkit.Publisher
	down  atomic.Bool
	fails atomic.Int64
}

func (p *outboxFlakyPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if p.down.Load() {
		p.fails.Add(1)
		return errors.New("broker unavailable")
	}
	return p.Publisher.Publish(ctx, topic, events...)
}

// TestOutboxBrokerDown: while the broker is down the events wait in the
// outbox; when it is back, they flow in order, once each.
func TestOutboxBrokerDown(t *testing.T) {
	pool := outboxTestPool(t)
	o := outboxTestStore(t, pool)
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	c := newOutboxCollector(t, bus, "ob.>")
	pub := &outboxFlakyPublisher{Publisher: bus}
	pub.down.Store(true)
	r := outbox.NewRelay(o, pub, outbox.WithLogger(slog.New(slog.DiscardHandler)), outbox.WithPollInterval(50*time.Millisecond), outbox.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	outboxRunRelay(t, r)
	const n = 60
	for i := range n {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return o.Write(ctx, tx, "ob.orders", outboxTestEvent(fmt.Sprintf("e-%d", i), "one-key", i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The relay keeps trying while the broker is down; nothing is lost.
	deadline := time.Now().Add(30 * time.Second)
	for pub.fails.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("relay did not retry (%d failures)", pub.fails.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.snapshot(); len(got) != 0 {
		t.Fatalf("%d events arrived while the broker was down", len(got))
	}
	if p, err := o.Pending(ctx); err != nil || p != n {
		t.Fatalf("Pending while the broker is down = %d, %v; want %d", p, err, n)
	}
	pub.down.Store(false)
	c.waitDistinct(t, n, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	got := c.snapshot()
	if len(got) != n {
		t.Fatalf("received %d events, want %d once each", len(got), n)
	}
	for i, e := range got {
		if s := outboxSeq(t, e); s != i {
			t.Fatalf("event %d has seq %d: order broken", i, s)
		}
	}
	if r.Stats().PublishErrors == 0 {
		t.Errorf("relay stats show no publish errors")
	}
}

// TestOutboxRelaysShareAndFailOver: two relays split the partitions; when
// one stops, the other takes them all. Events written all along are
// published once each, in order per key, across both hand-overs.
func TestOutboxRelaysShareAndFailOver(t *testing.T) {
	pool := outboxTestPool(t)
	o := outboxTestStore(t, pool, OutboxPartitions(8))
	bus := memory.New()
	defer bus.Close()
	c := newOutboxCollector(t, bus, "ob.>")
	quiet := slog.New(slog.DiscardHandler)
	opts := []outbox.RelayOption{outbox.WithLeaseTTL(3 * time.Second), outbox.WithPollInterval(50 * time.Millisecond), outbox.WithLogger(quiet)}
	a := outbox.NewRelay(o, bus, append(opts, outbox.WithOwner("a"))...)
	b := outbox.NewRelay(o, bus, append(opts, outbox.WithOwner("b"))...)

	ctx := context.Background()
	stopWriting := make(chan struct{})
	writerDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopWriting:
				writerDone <- n
				return
			default:
			}
			evs := []event.Event{
				outboxTestEvent(fmt.Sprintf("ha-%d", n), fmt.Sprintf("key-%d", n%5), n/5),
			}
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return o.Write(ctx, tx, "ob.ha", evs...) }); err != nil {
				t.Errorf("Write: %v", err)
				writerDone <- n
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: a holds %d, b holds %d", what, a.Stats().Partitions, b.Stats().Partitions)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	outboxRunRelay(t, a)
	waitFor("a alone holds all", func() bool { return a.Stats().Partitions == 8 })
	stopB := outboxRunRelay(t, b)
	waitFor("a and b share", func() bool { return a.Stats().Partitions == 4 && b.Stats().Partitions == 4 })
	time.Sleep(500 * time.Millisecond) // both publish for a while
	stopB()
	waitFor("a takes over", func() bool { return a.Stats().Partitions == 8 })
	close(stopWriting)
	n := <-writerDone
	if b.Stats().Published == 0 {
		t.Errorf("relay b published nothing while it held partitions")
	}
	c.waitDistinct(t, n, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := c.snapshot()
	seen := map[string]bool{}
	last := map[string]int{}
	for _, e := range got {
		if seen[e.ID()] {
			t.Errorf("event %s published twice across the hand-overs", e.ID())
			continue
		}
		seen[e.ID()] = true
		k, s := eventkit.EventKey(e), outboxSeq(t, e)
		prev, ok := last[k]
		if !ok {
			prev = -1
		}
		if s != prev+1 {
			t.Errorf("key %s: seq %d after %d", k, s, prev)
		}
		last[k] = s
	}
	if len(seen) != n {
		t.Errorf("%d distinct events published, %d written", len(seen), n)
	}
}

// The crash test: a child process runs a relay whose publisher records the
// events in a sink table, reports, and hangs before returning, so the relay
// never marks them; the parent SIGKILLs it and runs a relay of its own.

const outboxCrashEnv = "EVENTKIT_OUTBOX_CRASH_CHILD"

// outboxSinkPublisher inserts each event into a sink table (a durable
// broker stand-in shared by both processes).
type outboxSinkPublisher struct {
	pool  *pgxpool.Pool
	sink  string
	after func()
}

func (p *outboxSinkPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	for _, e := range events {
		if _, err := p.pool.Exec(ctx, `INSERT INTO `+p.sink+` (event_id, seq) VALUES ($1, $2)`, e.ID(), e.Extensions()["seq"]); err != nil {
			return err
		}
	}
	if p.after != nil {
		p.after()
	}
	return nil
}

func (p *outboxSinkPublisher) Close() error { return nil }

func TestOutboxRelayCrashChild(t *testing.T) {
	if os.Getenv(outboxCrashEnv) != "1" {
		t.Skip("helper process of TestOutboxRelayKilledBetweenPublishAndMark")
	}
	pool := outboxTestPool(t)
	o, err := NewOutbox(pool, OutboxTable(os.Getenv("EVENTKIT_OUTBOX_TABLE")))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub := &outboxSinkPublisher{pool: pool, sink: os.Getenv("EVENTKIT_OUTBOX_SINK"), after: func() {
		fmt.Println("PUBLISHED")
		select {} // hang: the relay never marks; the parent kills us
	}}
	r := outbox.NewRelay(o, pub, outbox.WithOwner("child"), outbox.WithLeaseTTL(2*time.Second))
	_ = r.Run(context.Background())
}

func TestOutboxRelayKilledBetweenPublishAndMark(t *testing.T) {
	pool := outboxTestPool(t)
	o := outboxTestStore(t, pool)
	ctx := context.Background()
	sink := pgx.Identifier{eventkittest.UniqueName("ekob_sink_")}.Sanitize()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+sink+` (n bigint GENERATED ALWAYS AS IDENTITY, event_id text NOT NULL, seq int)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+sink) })
	const n = 20
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = outboxTestEvent(fmt.Sprintf("crash-%d", i), "k", i)
		}
		return o.Write(ctx, tx, "ob.crash", evs...)
	}); err != nil {
		t.Fatal(err)
	}

	child := eventkittest.StartChild(t, "^TestOutboxRelayCrashChild$", outboxCrashEnv+"=1", "EVENTKIT_OUTBOX_TABLE="+o.name,
		"EVENTKIT_OUTBOX_SINK="+sink, "EVENTKIT_POSTGRES_URL="+outboxTestURL(t))
	child.WaitLine(t, "PUBLISHED", 60*time.Second)
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}

	var sunk int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+sink).Scan(&sunk); err != nil {
		t.Fatal(err)
	}
	if sunk != n {
		t.Fatalf("child published %d events, want %d", sunk, n)
	}
	if p, _ := o.Pending(ctx); p != n {
		t.Fatalf("after the kill, %d rows pending, want %d (published, never marked)", p, n)
	}

	// A new relay takes the partitions over once the dead one's lease
	// expires and publishes the same events again, with the same ids.
	r := outbox.NewRelay(o, &outboxSinkPublisher{pool: pool, sink: sink}, outbox.WithOwner("survivor"),
		outbox.WithLeaseTTL(2*time.Second), outbox.WithPollInterval(50*time.Millisecond))
	outboxRunRelay(t, r)
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := o.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still pending 60s after the crash", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := pool.Query(ctx, `SELECT event_id, seq FROM `+sink+` ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		ID  string
		Seq int
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[delivery])
	if err != nil {
		t.Fatal(err)
	}
	// Downstream dedup by event id: each event exactly once, in order.
	times := map[string]int{}
	next := 0
	for _, d := range all {
		times[d.ID]++
		if times[d.ID] > 1 {
			continue
		}
		if d.Seq != next {
			t.Fatalf("after dedup, seq %d came where %d was expected", d.Seq, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("after dedup, %d distinct events, want %d", next, n)
	}
	for i := range n {
		if c := times[fmt.Sprintf("crash-%d", i)]; c != 2 {
			t.Errorf("crash-%d delivered %d times; want 2 (once by the killed relay, once again with the same id)", i, c)
		}
	}
}
