package es_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

// quiet discards the projections' logs.
var quiet = es.WithProjectionLogger(slog.New(slog.DiscardHandler))

// deadLetterEnv returns an event store, a checkpoint store and a bus, all
// in memory, and a subscription to topic on the bus.
func deadLetterEnv(t *testing.T, topic string) (*memory.EventStore, *memory.CheckpointStore, *memory.Bus, eventkit.Subscription) {
	bus := memory.New()
	t.Cleanup(func() { _ = bus.Close() })
	dlq, err := bus.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return memory.NewEventStore(), memory.NewCheckpointStore(), bus, dlq
}

// permanent marks err permanent (eventkit.Permanent).
func permanent(err error) error { return eventkit.Permanent(err) }

// isInvalidOption reports whether err wraps eventkit.ErrInvalidOption.
func isInvalidOption(err error) bool { return errors.Is(err, eventkit.ErrInvalidOption) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
