package es

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ExpectedVersion is the version a stream must be at for an append to
// succeed: Any, NoStream, or Exact(v).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version is.
	Any ExpectedVersion = -1
	// NoStream appends only if the stream has no event yet (same as Exact(0)).
	NoStream ExpectedVersion = 0
)

// Exact expects the stream to be at version v (the number of events in it).
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

func (v ExpectedVersion) String() string {
	switch {
	case v == Any:
		return "any"
	case v == NoStream:
		return "no-stream"
	case v < 0:
		return fmt.Sprintf("ExpectedVersion(%d)", int64(v))
	}
	return fmt.Sprintf("exact(%d)", int64(v))
}

// Matches reports whether a stream at version actual satisfies v.
func (v ExpectedVersion) Matches(actual uint64) bool {
	return v == Any || (v >= 0 && uint64(v) == actual)
}

// ErrConflict is matched (errors.Is) by every *ConflictError.
var ErrConflict = errors.New("es: version conflict")

// ErrNotFound is returned by Repository.Load when the aggregate's stream
// has no event.
var ErrNotFound = errors.New("es: not found")

// ErrDuplicateEvent is returned when an appended event's id is already in
// the stream somewhere else than at the place of this append (so the append
// is neither new nor an idempotent repeat).
var ErrDuplicateEvent = errors.New("es: event id already in stream")

// ConflictError is the error of an append whose expected version did not
// match the stream's actual version.
type ConflictError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("es: version conflict on stream %q: expected %s, actual %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// RecordedEvent is an event as the store keeps it.
type RecordedEvent struct {
	Event      event.Event
	StreamID   string
	Version    uint64 // 1 for the first event of a stream
	Position   uint64 // place in the global log, 1 for the first event
	RecordedAt time.Time
}

// AppendResult is the outcome of a successful append.
type AppendResult struct {
	// Version is the stream's version after the append (the version of its
	// last event).
	Version uint64
	// Positions are the global positions of the appended events, in order.
	Positions []uint64
}

// Direction of a stream read.
type Direction int

const (
	// Forward reads from a version up.
	Forward Direction = iota
	// Backward reads from a version down (from 0: from the last event).
	Backward
)

// EventStore keeps streams of events and one global log of them all.
//
// Guarantees every store gives (eventkittest.TestEventStore proves them):
// appends are atomic per call; a stream's versions are 1, 2, 3, … with no
// hole; global positions are unique, increase in commit order, and a reader
// of the global log never sees position p+k before position p when both are
// committed — so following the log with "position > last seen" misses
// nothing and sees nothing twice.
type EventStore interface {
	// Append appends events to stream if its version matches expected. A
	// mismatch returns a *ConflictError — unless every event's id is already
	// in the stream at the place the append would have put it (same order),
	// in which case the append is an idempotent repeat: nothing is written
	// and the result of the first append is returned.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...event.Event) (AppendResult, error)
	// ReadStream returns up to limit events of stream (limit <= 0: all),
	// Forward starting at version from (0 or 1: the first), or Backward
	// starting at version from (0: the last) going down.
	ReadStream(ctx context.Context, stream string, dir Direction, from uint64, limit int) ([]RecordedEvent, error)
	// ReadAll returns up to limit events (limit <= 0: all) of the global log
	// whose position is greater than after, in position order.
	ReadAll(ctx context.Context, after uint64, limit int) ([]RecordedEvent, error)
	// Head returns the position of the last committed event (0: none).
	Head(ctx context.Context) (uint64, error)
	// Subscribe follows the global log from the event after position
	// after: it catches up on the stored events, then delivers new ones as
	// they are committed, each exactly once and in position order.
	Subscribe(ctx context.Context, after uint64, opts ...SubscribeOption) (Subscription, error)
}

// Subscription is a live follower of the global log.
type Subscription interface {
	// Events delivers the events; it is closed when the subscription ends
	// (Close, the context's end, or an error reported by Err).
	Events() <-chan RecordedEvent
	// Err returns the error that ended the subscription, if any (nil after
	// Close or the end of the context).
	Err() error
	// Close stops the subscription and waits for its goroutine.
	Close() error
}

// Filter selects events of the global log. The zero Filter selects all.
type Filter struct {
	// StreamPrefix keeps events whose stream id starts with it.
	StreamPrefix string
	// Types keeps events whose CloudEvents type is one of them.
	Types []string
}

// Match reports whether r passes the filter.
func (f Filter) Match(r *RecordedEvent) bool {
	if f.StreamPrefix != "" && !strings.HasPrefix(r.StreamID, f.StreamPrefix) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	t := r.Event.Type()
	for _, x := range f.Types {
		if x == t {
			return true
		}
	}
	return false
}

// SubscribeConfig is what SubscribeOptions set; stores read it with
// NewSubscribeConfig.
type SubscribeConfig struct {
	Filter       Filter
	Buffer       int           // capacity of the Events channel (default 256)
	BatchSize    int           // events read per query (default 500)
	PollInterval time.Duration // longest wait between reads when nothing wakes the subscription (default 200ms)
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*SubscribeConfig)

// WithFilter delivers only the events that pass f.
func WithFilter(f Filter) SubscribeOption { return func(c *SubscribeConfig) { c.Filter = f } }

// WithStreamPrefix delivers only the events of streams whose id starts with p.
func WithStreamPrefix(p string) SubscribeOption {
	return func(c *SubscribeConfig) { c.Filter.StreamPrefix = p }
}

// WithTypes delivers only events of the given CloudEvents types.
func WithTypes(types ...string) SubscribeOption {
	return func(c *SubscribeConfig) { c.Filter.Types = append(c.Filter.Types, types...) }
}

// WithBuffer sets the capacity of the Events channel.
func WithBuffer(n int) SubscribeOption { return func(c *SubscribeConfig) { c.Buffer = n } }

// WithBatchSize sets how many events a subscription reads per query.
func WithBatchSize(n int) SubscribeOption { return func(c *SubscribeConfig) { c.BatchSize = n } }

// WithPollInterval sets the longest wait between reads of the log when no
// local append wakes the subscription (appends by other processes are seen
// after at most this long).
func WithPollInterval(d time.Duration) SubscribeOption {
	return func(c *SubscribeConfig) { c.PollInterval = d }
}

// NewSubscribeConfig applies opts over the defaults.
func NewSubscribeConfig(opts ...SubscribeOption) SubscribeConfig {
	c := SubscribeConfig{Buffer: 256, BatchSize: 500, PollInterval: 200 * time.Millisecond}
	for _, o := range opts {
		o(&c)
	}
	if c.Buffer <= 0 {
		c.Buffer = 1
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	return c
}

// CheckAppend decides an append for a store that holds its write lock:
// given the stream's current version and the stored (version, position) of
// those appended event ids that already exist in the stream (existing, keyed
// by event id), it returns whether to write the events (write), or the
// result of an idempotent repeat (write false, err nil), or an error
// (*ConflictError or ErrDuplicateEvent). Stores call it so that all of them
// decide the same way.
func CheckAppend(stream string, expected ExpectedVersion, current uint64, events []event.Event, existing map[string][2]uint64) (res AppendResult, write bool, err error) {
	if expected < Any {
		return AppendResult{}, false, fmt.Errorf("es: invalid expected version %d", int64(expected))
	}
	if len(existing) == 0 {
		if !expected.Matches(current) {
			return AppendResult{}, false, &ConflictError{Stream: stream, Expected: expected, Actual: current}
		}
		return AppendResult{}, true, nil
	}
	// Some ids exist: an idempotent repeat has all of them, contiguous, in
	// order, starting right after the expected version (for Any: anywhere).
	first, ok := existing[events[0].ID()]
	if ok && len(existing) == len(events) {
		res.Positions = make([]uint64, len(events))
		repeat := expected == Any || uint64(expected)+1 == first[0]
		for i, e := range events {
			vp, ok := existing[e.ID()]
			if !ok || vp[0] != first[0]+uint64(i) {
				repeat = false
				break
			}
			res.Positions[i] = vp[1]
		}
		if repeat {
			res.Version = first[0] + uint64(len(events)) - 1
			return res, false, nil
		}
	}
	if !expected.Matches(current) {
		return AppendResult{}, false, &ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	return AppendResult{}, false, fmt.Errorf("%w: stream %q", ErrDuplicateEvent, stream)
}

// ValidateAppend checks the arguments of an append: a stream id, at least
// one event, each with an id, a source and a type, and no id twice.
func ValidateAppend(stream string, events []event.Event) error {
	if stream == "" {
		return errors.New("es: empty stream id")
	}
	if len(events) == 0 {
		return errors.New("es: append of no event")
	}
	seen := make(map[string]struct{}, len(events))
	for i := range events {
		e := &events[i]
		if e.ID() == "" || e.Source() == "" || e.Type() == "" {
			return fmt.Errorf("es: event %d of stream %q lacks id, source or type", i, stream)
		}
		if _, dup := seen[e.ID()]; dup {
			return fmt.Errorf("%w: id %q twice in one append", ErrDuplicateEvent, e.ID())
		}
		seen[e.ID()] = struct{}{}
	}
	return nil
}

// PendingAppend is an append written inside a transaction that is still
// open; see TxAppender.
type PendingAppend interface {
	// Commit commits the transaction and returns the append's result.
	Commit(ctx context.Context) (AppendResult, error)
	// Rollback abandons the append.
	Rollback(ctx context.Context) error
}

// TxAppender is implemented by stores whose appends are transactions:
// BeginAppend performs an append (with the same checks as Append) inside a
// transaction and leaves it open — holding what the append holds, in
// particular its place in the global order — until Commit or Rollback.
// eventkittest.TestEventStore uses it to prove that a subscriber neither
// skips an event whose transaction stays open for seconds nor stalls behind
// one that is rolled back.
type TxAppender interface {
	BeginAppend(ctx context.Context, stream string, expected ExpectedVersion, events ...event.Event) (PendingAppend, error)
}
