package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/sqlite"
	_ "modernc.org/sqlite"
)

func outboxTestStore(t *testing.T) (*sql.DB, *sqlite.Outbox) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(16)
	t.Cleanup(func() { _ = db.Close() })
	o := sqlite.NewOutbox(db, sqlite.OutboxPartitions(8))
	for range 2 { // idempotent
		if err := o.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return db, o
}

func outboxInTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func outboxRun(t *testing.T, r *outbox.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// outboxReceive takes n messages (acking each), or fails.
func outboxReceive(t *testing.T, s eventkit.Subscription, n int) []event.Event {
	t.Helper()
	var got []event.Event
	timeout := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case m := <-s.Messages():
			_ = m.Ack()
			got = append(got, m.Event)
		case <-timeout:
			t.Fatalf("received %d of %d events", len(got), n)
		}
	}
	return got
}

func TestOutboxWriteAndRelay(t *testing.T) {
	db, o := outboxTestStore(t)
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	s, err := bus.Subscribe(ctx, "ob.>", eventkit.WithBuffer(100))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := eventkittest.NewEvent("c-1")
	want.SetSubject("order/1")
	if err := outboxInTx(ctx, db, func(tx *sql.Tx) error {
		return o.Write(ctx, tx, "ob.orders", want, eventkittest.NewEvent("c-2"))
	}); err != nil {
		t.Fatal(err)
	}
	errRB := errors.New("rollback")
	if err := outboxInTx(ctx, db, func(tx *sql.Tx) error {
		if err := o.Write(ctx, tx, "ob.orders", eventkittest.NewEvent("rolled-back")); err != nil {
			return err
		}
		return errRB
	}); !errors.Is(err, errRB) {
		t.Fatal(err)
	}
	var ve *eventkit.ValidationError
	if err := outboxInTx(ctx, db, func(tx *sql.Tx) error {
		return o.Write(ctx, tx, "ob.orders", eventkittest.NewEvent(""))
	}); !errors.As(err, &ve) {
		t.Fatalf("invalid event: %v", err)
	}
	outboxRun(t, outbox.NewRelay(o, bus, outbox.WithPollInterval(20*time.Millisecond)))
	got := outboxReceive(t, s, 2)
	if got[0].ID() != "c-1" || got[1].ID() != "c-2" {
		t.Fatalf("got %s, %s", got[0].ID(), got[1].ID())
	}
	if d := eventkittest.DiffEvents(want, got[0]); d != "" {
		t.Errorf("changed: %s", d)
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
			t.Fatalf("%d rows pending", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case m := <-s.Messages():
		t.Fatalf("unexpected %s", m.Event.ID())
	case <-time.After(200 * time.Millisecond):
	}
}

// TestOutboxConcurrentTransactions: concurrent business transactions with
// random rollbacks, two relays: exactly the committed events, once each, in
// commit order per key.
func TestOutboxConcurrentTransactions(t *testing.T) {
	db, o := outboxTestStore(t)
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	s, err := bus.Subscribe(ctx, "ob.>", eventkit.WithBuffer(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2 {
		outboxRun(t, outbox.NewRelay(o, bus, outbox.WithOwner("r"+strconv.Itoa(i)), outbox.WithPollInterval(20*time.Millisecond)))
	}
	const writers, txEach = 16, 15
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 3))
			seq := 0
			for i := range txEach {
				n := 1 + rnd.IntN(3)
				var evs []event.Event
				for j := range n {
					e := eventkittest.NewEvent(fmt.Sprintf("w%d-t%d-e%d", w, i, j))
					e.SetExtension("partitionkey", "key-"+strconv.Itoa(w))
					e.SetExtension("seq", int32(seq+j))
					evs = append(evs, e)
				}
				rollback := rnd.IntN(3) == 0
				errRB := errors.New("rollback")
				err := outboxInTx(ctx, db, func(tx *sql.Tx) error {
					if err := o.Write(ctx, tx, "ob.orders", evs...); err != nil {
						return err
					}
					if rollback {
						return errRB
					}
					return nil
				})
				if rollback && errors.Is(err, errRB) {
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
		t.Fatal(err)
	}
	got := outboxReceive(t, s, len(committed))
	select {
	case m := <-s.Messages():
		t.Fatalf("extra event %s (published twice, or never committed)", m.Event.ID())
	case <-time.After(300 * time.Millisecond):
	}
	last := map[string]int{}
	seen := map[string]bool{}
	for _, e := range got {
		if !committed[e.ID()] || seen[e.ID()] {
			t.Fatalf("event %s: committed %v, seen before %v", e.ID(), committed[e.ID()], seen[e.ID()])
		}
		seen[e.ID()] = true
		k := eventkit.EventKey(e)
		sq, _ := strconv.Atoi(binding.FormatValue(e.Extensions()["seq"]))
		prev, ok := last[k]
		if !ok {
			prev = -1
		}
		if sq != prev+1 {
			t.Fatalf("key %s: seq %d after %d", k, sq, prev)
		}
		last[k] = sq
	}
}
