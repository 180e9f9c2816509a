package hub

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
		WithBroker(bus, bus), WithLogger(slog.New(slog.DiscardHandler)))
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

// serve runs s until the test ends.
func serve(t *testing.T, s *Server) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = s.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	})
	return ctx
}

// TestSubscriptionsAPIDeleteForgetsProgress: DELETE removes the durable
// consumer that kept the subscription's position.
func TestSubscriptionsAPIDeleteForgetsProgress(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", SubscriptionsAPI: SubscriptionsAPIConfig{AllowPrivateSinks: true}},
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := serve(t, s)
	req := httptest.NewRequest(http.MethodPost, "/subscriptions", strings.NewReader(`{"protocol": "HTTP", "sink": "http://127.0.0.1:9/"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	id, ok := strings.CutPrefix(rec.Header().Get("Location"), "/subscriptions/")
	if rec.Code != http.StatusCreated || !ok {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	consumer := "hub-" + id
	if _, err := s.jsAPI.Consumer(ctx, s.cfg.Broker.Stream, consumer); err != nil {
		t.Fatalf("the subscription's consumer: %v", err)
	}
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/subscriptions/"+id, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.jsAPI.Consumer(ctx, s.cfg.Broker.Stream, consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer after DELETE: %v, want ErrConsumerNotFound", err)
	}
}

// stopDuringStart is a context whose stop arrives just after Run has
// checked it and before its workers start: its first Err is nil, every
// later one context.Canceled, and Done is closed from the start.
type stopDuringStart struct {
	context.Context
	checks atomic.Int32
}

func (c *stopDuringStart) Err() error {
	if c.checks.Add(1) == 1 {
		return nil
	}
	return context.Canceled
}

func (c *stopDuringStart) Done() <-chan struct{} {
	done := make(chan struct{})
	close(done)
	return done
}

// TestRunStoppedWhileStartingIsNoFailure: a stop that arrives while the
// workers start (their stores then answer context.Canceled) ends Run with
// nil, as a stop at any other moment does. Run returned "replays store:
// context canceled" before.
func TestRunStoppedWhileStartingIsNoFailure(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(&stopDuringStart{Context: context.Background()}); err != nil {
		t.Fatalf("Run: %v, want nil", err)
	}
}
