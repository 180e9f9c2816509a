// Package deadletter reads, re-drives and purges dead letters: the events
// that middleware.DeadLetter published to a dead-letter topic after their
// handler gave up on them. It is driver-free: a Store (the server's
// embedded JetStream, a test's memory) lists, reads, deletes and
// re-publishes stored events; this package holds the rules.
//
// Guarantees:
//
//   - A re-driven event keeps its id, source and every attribute and
//     extension it had when it was first published; the dead-letter
//     extensions (dlqtopic, dlqhandler, dlqattempts, dlqerror, dlqtime) are
//     removed, the extension redrivecount is one more than before (1 on the
//     first re-drive), and redrivefor names the subscription (route) that
//     dead-lettered it, so that only that one delivers it again.
//   - It is published to the topic it was dead-lettered from, with an
//     idempotency key made of the dead letter's position (Store.Republish):
//     a re-drive repeated after a failure or run twice at once publishes the
//     event once, and a store that drops repeated event ids within a window
//     does not drop it as a repeat of its first publish.
//   - The dead letter is deleted only after the event was re-published: a
//     failure in between leaves it in place, to be re-driven again.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/inspect/stored"
	"github.com/eventkit/eventkit/internal/ceext"
)

// Extensions of a dead letter (set by middleware.DeadLetter) and of a
// re-driven event. The dlq names repeat middleware's constants, which this
// package does not import.
const (
	// ExtTopic holds the topic the event was dead-lettered from.
	ExtTopic = "dlqtopic"
	// ExtHandler holds the route (the server's subscription) that gave up.
	ExtHandler = "dlqhandler"
	// ExtAttempts holds the number of attempts made.
	ExtAttempts = "dlqattempts"
	// ExtError holds the last error's message.
	ExtError = "dlqerror"
	// ExtTime holds the time it was dead-lettered.
	ExtTime = "dlqtime"
	// ExtRedriveCount is the number of times the event was re-driven (a
	// CloudEvents Integer).
	ExtRedriveCount = "redrivecount"
	// ExtRedriveFor names the route (subscription) a re-driven event is
	// meant for; the others that see it again skip it.
	ExtRedriveFor = "redrivefor"
)

// DefaultLimit is the number of dead letters listed when a query gives
// none; MaxLimit bounds it.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// ErrNotFound is returned when there is no dead letter at a position.
var ErrNotFound = errors.New("deadletter: no dead letter at this position")

// ErrNotDeadLetter is returned when an event cannot be re-driven: it
// carries no dlqtopic extension.
var ErrNotDeadLetter = errors.New("deadletter: the event has no dlqtopic extension")

// Item is one stored event as the server's inspection API answers it
// (stored.RawItem: position, topic, store time and the event in the
// CloudEvents JSON format), with, for a dead letter, the subscription it
// was dead-lettered by.
type Item struct {
	stored.RawItem
	// Subscription is the subscription that dead-lettered it (dead
	// letters only).
	Subscription string `json:"subscription,omitempty"`
}

// Decode returns the event of it (the embedded RawItem.Decode returns the
// whole item decoded).
func (it Item) Decode() (event.Event, error) { return eventkit.UnmarshalEvent(it.Event) }

// Query selects dead letters.
type Query struct {
	// Subscription keeps the dead letters of one subscription ("": all).
	Subscription string
	// After keeps those stored after this position ("": from the first).
	After string
	// Limit bounds the answer (0: DefaultLimit; at most MaxLimit).
	Limit int
}

// Store is where dead letters are kept.
type Store interface {
	// List returns the dead letters q selects, in store order.
	List(ctx context.Context, q Query) ([]Item, error)
	// Get returns the dead letter at position, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, position string) (Item, error)
	// Delete removes the dead letter at position; an error wrapping
	// ErrNotFound when there is none.
	Delete(ctx context.Context, position string) error
	// Republish publishes e to topic and returns it as stored. A second
	// call with the same key (within the store's window, at least a few
	// minutes) must not store e again: it returns the item of the first.
	Republish(ctx context.Context, topic string, e event.Event, key string) (Item, error)
}

// Subscription returns the subscription (route) that dead-lettered e.
func Subscription(e *event.Event) string { return extString(e, ExtHandler) }

// OriginalTopic returns the topic e was dead-lettered from.
func OriginalTopic(e *event.Event) (string, bool) {
	t := extString(e, ExtTopic)
	return t, t != ""
}

// RedriveCount returns the value of e's redrivecount extension (0 when
// absent or not a number).
func RedriveCount(e *event.Event) int {
	switch v := e.Extensions()[ExtRedriveCount].(type) {
	case int32:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// Prepare returns the event to re-publish for the dead letter e and the
// topic to publish it to: e without its dead-letter extensions, with
// redrivecount incremented and redrivefor set to the subscription that
// dead-lettered it.
func Prepare(e event.Event) (string, event.Event, error) {
	t, ok := OriginalTopic(&e)
	if !ok {
		return "", event.Event{}, ErrNotDeadLetter
	}
	sub := Subscription(&e)
	out := e.Clone()
	for _, x := range []string{ExtTopic, ExtHandler, ExtAttempts, ExtError, ExtTime, ExtRedriveFor} {
		out.SetExtension(x, nil) // nil removes it
	}
	out.SetExtension(ExtRedriveCount, int32(min(RedriveCount(&e)+1, 1<<31-1)))
	if sub != "" {
		out.SetExtension(ExtRedriveFor, sub)
	}
	return t, out, nil
}

// For reports whether a subscription (route) named name should deliver e:
// true unless e was re-driven for another one.
func For(e *event.Event, name string) bool {
	to := extString(e, ExtRedriveFor)
	return to == "" || to == name
}

// Key is the idempotency key of the re-drive of the dead letter at
// position.
func Key(position string) string { return "redrive " + position }

// Redrive re-publishes the dead letter at position to its original topic
// (see Prepare) and then deletes it; it returns the event as re-published.
// A dead letter deleted meanwhile (by a concurrent re-drive of it) is not
// an error once the event was re-published: repeated then reports that
// this call was not the one that re-drove it (the store published the
// event once, under its key).
func Redrive(ctx context.Context, s Store, position string) (it Item, repeated bool, err error) {
	dl, err := s.Get(ctx, position)
	if err != nil {
		return Item{}, false, err
	}
	return redriveItem(ctx, s, dl)
}

func redriveItem(ctx context.Context, s Store, it Item) (Item, bool, error) {
	e, err := it.Decode()
	if err != nil {
		return Item{}, false, fmt.Errorf("deadletter: %s: %w", it.Position, err)
	}
	t, out, err := Prepare(e)
	if err != nil {
		return Item{}, false, fmt.Errorf("deadletter: %s: %w", it.Position, err)
	}
	pub, err := s.Republish(ctx, t, out, Key(it.Position))
	if err != nil {
		return Item{}, false, fmt.Errorf("deadletter: re-drive %s to %q: %w", it.Position, t, err)
	}
	if err := s.Delete(ctx, it.Position); errors.Is(err, ErrNotFound) {
		return pub, true, nil
	} else if err != nil {
		return pub, false, fmt.Errorf("deadletter: re-drove %s, but could not delete it: %w", it.Position, err)
	}
	return pub, false, nil
}

// RedriveAll re-drives the dead letters of subscription ("": all) stored
// before the call, in store order, and returns how many it re-drove. The
// events that fail again meanwhile and come back as new dead letters are
// left for the next call.
func RedriveAll(ctx context.Context, s Store, subscription string) (int, error) {
	return each(ctx, s, subscription, func(it Item) error {
		_, _, err := redriveItem(ctx, s, it)
		return err
	})
}

// Purge deletes the dead letters of subscription ("": all) stored before
// the call and returns how many it deleted.
func Purge(ctx context.Context, s Store, subscription string) (int, error) {
	return each(ctx, s, subscription, func(it Item) error {
		if err := s.Delete(ctx, it.Position); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}

// each calls fn on every dead letter of subscription stored before now,
// page by page.
func each(ctx context.Context, s Store, subscription string, fn func(Item) error) (int, error) {
	start := time.Now()
	n := 0
	q := Query{Subscription: subscription, Limit: 1000}
	for {
		items, err := s.List(ctx, q)
		if err != nil {
			return n, err
		}
		for _, it := range items {
			if it.Stored.After(start) {
				return n, nil
			}
			if err := fn(it); err != nil {
				return n, err
			}
			n++
		}
		if len(items) < q.Limit {
			return n, nil
		}
		q.After = items[len(items)-1].Position
	}
}

// extString returns the string extension name of e ("" when absent).
func extString(e *event.Event, name string) string {
	s, _ := ceext.String(e, name)
	return s
}
