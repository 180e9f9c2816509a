package hub_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
)

// TestMaxBytesRefusesNewEvents: at broker.max_bytes the server refuses new
// events with 507 problem+json instead of dropping acknowledged ones:
// every event answered 204 is still stored.
func TestMaxBytesRefusesNewEvents(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10}})
	accepted := map[string]bool{}
	refused := 0
	for i := 0; i < 2000 && refused < 3; i++ {
		id := strconv.Itoa(i)
		switch r := postEvent(t, s.URL(), id, "full.t"); r.StatusCode {
		case http.StatusNoContent:
			accepted[id] = true
		case http.StatusInsufficientStorage:
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("507 with Content-Type %q", ct)
			}
			refused++
		default:
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	if refused == 0 {
		t.Fatalf("%d events accepted into a 64 KiB stream, none refused", len(accepted))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := s.Subscriber().Subscribe(ctx, "full.>", eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for got := 0; got < len(accepted); got++ {
		select {
		case m := <-sub.Messages():
			if !accepted[m.Event.ID()] {
				t.Fatalf("stored event %s was not acknowledged", m.Event.ID())
			}
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("lost: %d of %d acknowledged events stored", got, len(accepted))
		}
	}
}
