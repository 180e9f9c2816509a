package memory_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
)

// A delayed nack racing with Close must not race on the bus's wait group
// (go test -race) nor keep Close waiting for the delay.
func TestNackAfterRacesWithClose(t *testing.T) {
	for i := 0; i < 50; i++ {
		bus := memory.New()
		s, err := bus.Subscribe(context.Background(), "race")
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(context.Background(), "race", eventkittest.NewEvent("x")); err != nil {
			t.Fatal(err)
		}
		m := <-s.Messages()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = m.NackAfter(errors.New("later"), time.Hour)
		}()
		start := time.Now()
		_ = bus.Close()
		wg.Wait()
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("Close took %s", el)
		}
	}
}

// An acked message keeps its event when the bus reuses the storage of its
// delivery for the next publish.
func TestAckedMessageKeepsItsEvent(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	s := testkit.Subscribe(t, ctx, bus, "keep")
	var held []*eventkit.Message
	for i := 0; i < 100; i++ {
		ev := eventkittest.NewEvent("keep-" + strconv.Itoa(i))
		ev.SetExtension("n", int32(i))
		if err := bus.Publish(ctx, "keep", ev); err != nil {
			t.Fatal(err)
		}
		m := <-s.Messages()
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
		held = append(held, m)
	}
	for i, m := range held {
		want := eventkittest.NewEvent("keep-" + strconv.Itoa(i))
		want.SetExtension("n", int32(i))
		if d := eventkittest.DiffEvents(want, m.Event); d != "" {
			t.Fatalf("acked message %d changed: %s", i, d)
		}
	}
}
