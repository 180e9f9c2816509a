package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
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
