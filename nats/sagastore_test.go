package nats_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// sagaStores returns a factory of saga stores, each on a bucket of its own.
func sagaStores(connect func(*testing.T) *nats.Conn) eventkittest.SagaStoreFactory {
	return func(t *testing.T) (saga.Store, outbox.Store) {
		js, name := kvJetStream(t, connect)
		s, err := eknats.NewSagaStore(context.Background(), js, name)
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Outbox()
	}
}

func TestSagaStoreEmbedded(t *testing.T) {
	eventkittest.TestSagaStore(t, sagaStores(connectEmbedded))
}

func TestSagaStoreServer(t *testing.T) {
	connectServer(t).Close()
	eventkittest.TestSagaStore(t, sagaStores(connectServer))
}

// newSagaStore returns a store on a bucket of its own on the embedded
// server, its JetStream and the bucket's name.
func newSagaStore(t *testing.T) (*eknats.SagaStore, jetstream.JetStream, string) {
	t.Helper()
	js, name := kvJetStream(t, connectEmbedded)
	s, err := eknats.NewSagaStore(t.Context(), js, name)
	if err != nil {
		t.Fatal(err)
	}
	return s, js, name
}

// embeddedSagaStore returns a store on a bucket of its own on the embedded
// server, for tests and benchmarks alike; the bucket is deleted at the end.
func embeddedSagaStore(tb testing.TB, opts ...eknats.KVOption) *eknats.SagaStore {
	tb.Helper()
	nc, err := embedded(tb).Connect()
	var js jetstream.JetStream
	if err == nil {
		tb.Cleanup(nc.Close)
		js, err = jetstream.New(nc)
	}
	var s *eknats.SagaStore
	if name := eventkittest.UniqueName("ekkv"); err == nil {
		tb.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), name) })
		s, err = eknats.NewSagaStore(tb.Context(), js, name, opts...)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func sagaRecord(id string, v uint64) saga.Record {
	return saga.Record{Saga: "checkout", ID: id, Version: v, Status: saga.Running, State: []byte(`{}`)}
}

// The outbox of the store, through a Relay: every emitted message is
// published once, in order, and its row is then gone from the bucket.
func TestSagaOutboxRelay(t *testing.T) {
	s, _, _ := newSagaStore(t)
	ctx := t.Context()
	var want []string
	for v := uint64(1); v <= 3; v++ {
		var out []saga.Message
		for n := range 2 {
			id := fmt.Sprintf("v%d-%d", v, n)
			want = append(want, id)
			out = append(out, saga.Message{Topic: "stock.commands", Event: eventkittest.NewEvent(id)})
		}
		if err := s.Save(ctx, saga.Change{Record: sagaRecord("o1", v), Outgoing: out}); err != nil {
			t.Fatal(err)
		}
	}
	bus := memory.New()
	defer bus.Close()
	sub, err := bus.Subscribe(ctx, "stock.commands")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(s.Outbox(), bus, outbox.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	eventkittest.RunRelay(t, relay)
	var got []string
	for len(got) < len(want) {
		select {
		case m := <-sub.Messages():
			got = append(got, m.Event.ID())
			_ = m.Ack()
		case <-time.After(30 * time.Second):
			t.Fatalf("relay published %v; want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("relay published %v; want %v (commit order)", got, want)
	}
	eventkittest.WaitFor(t, 30*time.Second, "published rows deleted", func() bool {
		recs, err := s.Outbox().Fetch(ctx, []outbox.Cursor{{Partition: 0}}, 100)
		return err == nil && len(recs) == 0
	})
}

// One relay holds the outbox at a time; another takes it once released or
// expired, and a relay that lost it marks nothing.
func TestSagaOutboxLease(t *testing.T) {
	s, _, _ := newSagaStore(t)
	o, ctx := s.Outbox(), t.Context()
	claim := func(owner string, ttl time.Duration) []int {
		t.Helper()
		parts, err := o.Claim(ctx, owner, ttl)
		if err != nil {
			t.Fatalf("Claim(%s): %v", owner, err)
		}
		return parts
	}
	if p := claim("a", time.Minute); !slices.Equal(p, []int{0}) {
		t.Fatalf("Claim(a) on a free outbox = %v; want [0]", p)
	}
	if p := claim("b", time.Minute); len(p) != 0 {
		t.Fatalf("Claim(b) while a holds the lease = %v; want none", p)
	}
	if err := o.MarkDelivered(ctx, "b", []outbox.Record{{ID: 1}}); !errors.Is(err, outbox.ErrLeaseLost) {
		t.Fatalf("MarkDelivered(b) = %v; want ErrLeaseLost", err)
	}
	if err := o.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if p := claim("b", 100*time.Millisecond); !slices.Equal(p, []int{0}) {
		t.Fatalf("Claim(b) after a released = %v; want [0]", p)
	}
	eventkittest.WaitFor(t, 10*time.Second, "a takes the expired lease of b", func() bool {
		return slices.Equal(claim("a", time.Minute), []int{0})
	})
	if err := o.MarkDelivered(ctx, "b", nil); !errors.Is(err, outbox.ErrLeaseLost) {
		t.Fatalf("MarkDelivered(b) after its lease expired = %v; want ErrLeaseLost", err)
	}
}

// A batch whose commit never comes (the process died in the middle of a
// save) stores nothing: no instance, no outbox row.
func TestSagaStoreAbandonedBatch(t *testing.T) {
	s, js, name := newSagaStore(t)
	ctx := t.Context()
	nc := connectEmbedded(t)
	row := nats.NewMsg("$KV." + name + ".o.abandoned")
	row.Header.Set("Nats-Batch-Id", "abandoned")
	row.Header.Set("Nats-Batch-Sequence", "1")
	row.Data = []byte(`{}`)
	if err := nc.PublishMsg(row); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close() // the instance, which would commit the batch, never comes
	st, err := js.Stream(ctx, "KV_"+name)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("stream after an abandoned batch: %v messages, %v; want none", info.State.Msgs, err)
	}
	if recs, err := s.Outbox().Fetch(ctx, []outbox.Cursor{{Partition: 0}}, 10); err != nil || len(recs) != 0 {
		t.Fatalf("Fetch after an abandoned batch = %v, %v; want nothing", recs, err)
	}
	if err := s.Save(ctx, saga.Change{Record: sagaRecord("o1", 1)}); err != nil {
		t.Fatalf("Save after an abandoned batch: %v", err)
	}
}

// A bucket made by jetstream.CreateKeyValue forbids deletes (and atomic
// batches): it is refused, never changed.
func TestSagaStoreRefusesPlainBucket(t *testing.T) {
	js, name := kvJetStream(t, connectEmbedded)
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := eknats.NewSagaStore(t.Context(), js, name); err == nil {
		t.Fatal("NewSagaStore on a plain key-value bucket succeeded; want an error")
	}
}

// Reopening a store's bucket (another process, a restart) finds its
// instances.
func TestSagaStoreReopen(t *testing.T) {
	s, js, name := newSagaStore(t)
	if err := s.Save(t.Context(), saga.Change{Record: sagaRecord("o1", 1), EventID: "e1"}); err != nil {
		t.Fatal(err)
	}
	again, err := eknats.NewSagaStore(t.Context(), js, name)
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := again.Seen(t.Context(), "checkout", "o1", "e1"); err != nil || !seen {
		t.Fatalf("Seen(e1) on the reopened store = %v, %v; want true", seen, err)
	}
}
