package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/saga"
)

// barrierStore makes the first n Loads wait for each other, so that n
// handlers read the same version and all but one conflict.
type barrierStore struct {
	saga.Store
	wg        sync.WaitGroup
	loads     atomic.Int32
	n         int32
	conflicts atomic.Int32
}

func (b *barrierStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	r, err := b.Store.Load(ctx, name, id)
	if b.loads.Add(1) <= b.n {
		b.wg.Done()
		b.wg.Wait()
	}
	return r, err
}

func (b *barrierStore) Save(ctx context.Context, c saga.Change) error {
	err := b.Store.Save(ctx, c)
	if errors.Is(err, saga.ErrConflict) {
		b.conflicts.Add(1)
	}
	return err
}

func TestConflictRetriesEvent(t *testing.T) {
	const n = 8
	mem := memory.NewSagaStore()
	setup := orderSaga(t, mem)
	handle(t, setup, ev("e0", "order.placed", "o1"))
	store := &barrierStore{Store: mem, n: n}
	store.wg.Add(n)
	s, _ := saga.New[order]("orders", store)
	_ = s.On("note", saga.Step[order]{Do: func(_ context.Context, c *saga.Context[order], e event.Event) error {
		c.State.Notes = append(c.State.Notes, e.ID())
		return nil
	}})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.HandleEvent(context.Background(), ev(fmt.Sprint("n", i), "note", "o1")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	in := get(t, s, "o1")
	if len(in.State.Notes) != n || in.Version != n+1 {
		t.Fatalf("notes %v at version %d; want all %d events applied once", in.State.Notes, in.Version, n)
	}
	if c := store.conflicts.Load(); c < n-1 {
		t.Fatalf("%d conflicts; want at least %d (the barrier makes them)", c, n-1)
	}
}

func TestConflictRetriesExhausted(t *testing.T) {
	mem := memory.NewSagaStore()
	handle(t, orderSaga(t, mem), ev("e0", "order.placed", "o1"))
	store := &barrierStore{Store: mem, n: 2}
	store.wg.Add(2)
	s := orderSaga(t, store, saga.WithConflictRetries(0))
	errs := make(chan error, 2)
	for _, id := range []string{"a", "b"} {
		go func() { errs <- s.HandleEvent(context.Background(), ev(id, "stock.reserved", "o1")) }()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), saga.ErrConflict) {
		t.Fatalf("errors %v, %v; want one success and one ErrConflict with no retries", e1, e2)
	}
}
