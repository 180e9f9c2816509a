package middleware

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/dedup"
)

// DefaultDedupTTL is how long Dedup remembers a handled event by default.
const DefaultDedupTTL = 24 * time.Hour

// DedupOption configures Dedup.
type DedupOption func(*dedupConfig)

type dedupConfig struct {
	key    func(m *eventkit.Message) string
	ttl    time.Duration
	logger *slog.Logger
}

// DedupKey sets the key under which a handled event is remembered (default
// DefaultDedupKey: its source and id). Return "" to handle a message without
// deduplication.
func DedupKey(fn func(m *eventkit.Message) string) DedupOption {
	return func(c *dedupConfig) { c.key = fn }
}

// DedupTTL sets how long a handled event is remembered (default
// DefaultDedupTTL; <= 0: the store's default).
func DedupTTL(d time.Duration) DedupOption { return func(c *dedupConfig) { c.ttl = d } }

// DedupLogger sets the logger for a failure to record a handled event
// (default slog.Default()).
func DedupLogger(l *slog.Logger) DedupOption { return func(c *dedupConfig) { c.logger = l } }

// DefaultDedupKey returns the key of an event by its source and id, which
// together identify a CloudEvent: the length of the source, a colon, the
// source, then the id (unambiguous whatever characters they hold).
func DefaultDedupKey(m *eventkit.Message) string {
	src := m.Event.Source()
	return strconv.Itoa(len(src)) + ":" + src + m.Event.ID()
}

// Dedup skips events already handled successfully: if store (a
// dedup.Store: memory, redis, postgres, sqlite and nats hold one) has seen the
// message's key, the message is acked without running the handler (the
// outcome "dropped"). Otherwise the handler runs, and only if it succeeds is
// the key marked in the store; a failed handling leaves no record, so the
// redelivery is handled.
//
// If the store cannot be read, Dedup returns the error and the message is
// nacked (the handler does not run). If marking fails after a successful
// handling, the message is still acked (the effect happened) and the
// failure logged; a later redelivery would be handled again.
//
// Dedup makes sequential redeliveries idempotent; two deliveries of one
// event handled at the same moment can both run. For effectively-once,
// mark the key in the same transaction as the handler's effect (the SQL
// stores offer that).
func Dedup(store dedup.Store, opts ...DedupOption) eventkit.Middleware {
	c := dedupConfig{key: DefaultDedupKey, ttl: DefaultDedupTTL}
	for _, o := range opts {
		o(&c)
	}
	c.logger = cmp.Or(c.logger, slog.Default())
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			key := c.key(m)
			if key == "" {
				return next.Handle(ctx, m)
			}
			seen, err := store.Seen(ctx, key)
			if err != nil {
				return fmt.Errorf("dedup: read store: %w", err)
			}
			if seen {
				ReportFromContext(ctx).SetOutcome(OutcomeDropped)
				return nil
			}
			if err := next.Handle(ctx, m); err != nil {
				return err
			}
			if _, err := store.Mark(ctx, key, c.ttl); err != nil {
				c.logger.LogAttrs(ctx, slog.LevelWarn, "eventkit: dedup: record handled event",
					slog.String("topic", m.Topic), slog.String("id", m.Event.ID()),
					slog.String("source", m.Event.Source()), slog.Any("err", err))
			}
			return nil
		})
	}
}
