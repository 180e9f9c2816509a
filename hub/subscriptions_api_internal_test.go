package hub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/eventkit/eventkit/memory"
)

// TestSubscriptionsAPINothingStartsAfterStop: a request still running when
// the server cut its connection at shutdown cannot start a subscription
// that nothing would stop.
func TestSubscriptionsAPINothingStartsAfterStop(t *testing.T) {
	bus := memory.New()
	s, err := New(Config{Listen: "127.0.0.1:0", SubscriptionsAPI: SubscriptionsAPIConfig{AllowPrivateSinks: true}},
		WithBroker(bus, bus), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = s.ln.Close()
		_ = s.closeBroker(context.Background())
	}()
	if err := s.api.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.api.mu.Lock()
	ls, err := s.api.run(APISubscription{ID: "late", Protocol: "HTTP", Sink: "http://127.0.0.1:9/"})
	s.api.mu.Unlock()
	if !errors.Is(err, errStopped) {
		if ls != nil {
			_ = ls.halt(context.Background())
		}
		t.Fatalf("run after stop: %v, want errStopped", err)
	}
}
