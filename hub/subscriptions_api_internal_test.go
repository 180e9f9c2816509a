package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/memory"
	"github.com/nats-io/nats.go/jetstream"
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

// TestSubscriptionsAPIDeleteForgetsProgress: DELETE removes the durable
// consumer that kept the subscription's position.
func TestSubscriptionsAPIDeleteForgetsProgress(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", SubscriptionsAPI: SubscriptionsAPIConfig{AllowPrivateSinks: true}},
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	req := httptest.NewRequest(http.MethodPost, "/subscriptions", strings.NewReader(`{"protocol": "HTTP", "sink": "http://127.0.0.1:9/"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var sub APISubscription
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &sub) != nil {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.jsAPI.Consumer(ctx, s.cfg.Broker.Stream, "hub-"+sub.ID); err != nil {
		t.Fatalf("the subscription's consumer: %v", err)
	}
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/subscriptions/"+sub.ID, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.jsAPI.Consumer(ctx, s.cfg.Broker.Stream, "hub-"+sub.ID); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer after DELETE: %v, want ErrConsumerNotFound", err)
	}
}
