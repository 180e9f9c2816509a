// Package probe follows one flow of events across topics and an event
// store: every stored event linked to a key (a correlation id, a subject
// or an aggregate id) in time order, as a timeline, a Mermaid sequence
// diagram and a self-contained HTML page. It is driver-free: a Source (the
// server's topics over its HTTP API, an es.EventStore through
// EventStoreSource) finds the events; this package merges and draws them.
//
// Guarantees: a Timeline's items are in the order of their store time (then
// of their event time, then of their position), each event once even when
// two sources hold it (same source and id: the first source's kept; within
// one source every stored copy stays, a re-driven event too); at most Limit items
// (the earliest). The HTML page loads nothing: it has no external URL, no
// script, and a Content-Security-Policy that forbids loading anything; every
// value of an event is escaped.
package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/inspect/stored"
)

// ExtCorrelationID is the extension that carries a correlation id (set by
// middleware.Correlation).
const ExtCorrelationID = "correlationid"

// DefaultLimit bounds a timeline when no limit is given; MaxLimit is the
// largest limit.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// ErrNoKey is returned for a Key with no field set, or more than one.
var ErrNoKey = errors.New("probe: want exactly one of correlationid, subject, aggregate")

// Key is what links the events of a flow: exactly one field is set.
type Key struct {
	// CorrelationID matches the events whose correlationid extension is
	// it.
	CorrelationID string `json:"correlationid,omitempty"`
	// Subject matches the events whose subject is it.
	Subject string `json:"subject,omitempty"`
	// Aggregate matches the events of the event-store stream of this id,
	// and, on topics, the events whose subject is it (the convention of
	// events published from an aggregate).
	Aggregate string `json:"aggregate,omitempty"`
}

// Validate returns ErrNoKey unless exactly one field is set.
func (k Key) Validate() error {
	n := 0
	for _, v := range []string{k.CorrelationID, k.Subject, k.Aggregate} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return ErrNoKey
	}
	return nil
}

// String names the key ("correlationid=c-1").
func (k Key) String() string {
	switch {
	case k.CorrelationID != "":
		return "correlationid=" + k.CorrelationID
	case k.Subject != "":
		return "subject=" + k.Subject
	case k.Aggregate != "":
		return "aggregate=" + k.Aggregate
	}
	return "(no key)"
}

// Match reports whether e is linked to k (on a topic; see Key.Aggregate).
func (k Key) Match(e *event.Event) bool {
	switch {
	case k.CorrelationID != "":
		s, ok := e.Extensions()[ExtCorrelationID].(string)
		return ok && s == k.CorrelationID
	case k.Subject != "":
		return e.Subject() == k.Subject
	case k.Aggregate != "":
		return e.Subject() == k.Aggregate
	}
	return false
}

// Item is one stored event of a timeline, in the shape of the server's
// inspection API (package stored; inspect.Item is the same item decoded),
// its event in the CloudEvents JSON format so that a timeline shows an
// event it cannot decode too. For an event of an event store, Topic is
// "es:" followed by the stream id and Position the store's global
// position.
type Item = stored.RawItem

// Timeline is the answer of a probe.
type Timeline struct {
	Key   Key    `json:"key"`
	Items []Item `json:"items"`
	// Truncated reports that more events matched than the limit.
	Truncated bool `json:"truncated,omitempty"`
}

// Query is what a Source is asked.
type Query struct {
	Key Key
	// Since and Until bound the store time (zero: unbounded).
	Since, Until time.Time
	// Limit bounds the items (0: DefaultLimit).
	Limit int
}

// InRange reports whether t is within q's Since and Until.
func (q Query) InRange(t time.Time) bool {
	return (q.Since.IsZero() || !t.Before(q.Since)) && (q.Until.IsZero() || t.Before(q.Until))
}

// Source finds stored events.
type Source interface {
	// Probe returns the events linked to q.Key stored within q's range,
	// at most q.Limit of them (the earliest), and whether more matched.
	Probe(ctx context.Context, q Query) (items []Item, more bool, err error)
}

// SourceFunc is a Source as a function.
type SourceFunc func(ctx context.Context, q Query) ([]Item, bool, error)

// Probe calls f.
func (f SourceFunc) Probe(ctx context.Context, q Query) ([]Item, bool, error) { return f(ctx, q) }

// Run asks every source and merges their answers into one timeline.
func Run(ctx context.Context, q Query, sources ...Source) (Timeline, error) {
	if err := q.Key.Validate(); err != nil {
		return Timeline{}, err
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	tl := Timeline{Key: q.Key, Items: []Item{}}
	seen := map[[2]string]bool{} // the events of the sources asked before
	for _, s := range sources {
		items, more, err := s.Probe(ctx, q)
		if err != nil {
			return Timeline{}, err
		}
		var mine [][2]string
		for _, it := range items {
			k, ok := identity(it)
			if ok && seen[k] {
				continue
			}
			tl.Items = append(tl.Items, it)
			if ok {
				mine = append(mine, k)
			}
		}
		for _, k := range mine {
			seen[k] = true
		}
		tl.Truncated = tl.Truncated || more
	}
	tl.Items = Sort(tl.Items)
	if len(tl.Items) > q.Limit {
		tl.Items, tl.Truncated = tl.Items[:q.Limit], true
	}
	return tl, nil
}

// identity is the source and id of an item's event.
func identity(it Item) ([2]string, bool) {
	e, err := eventkit.UnmarshalEvent(it.Event)
	if err != nil {
		return [2]string{}, false
	}
	return [2]string{e.Source(), e.ID()}, true
}

// Sort sorts items into time order: by store time (event time when it has
// none), then position within one store.
func Sort(items []Item) []Item {
	type parsed struct {
		it  Item
		at  time.Time
		pos uint64
	}
	ps := make([]parsed, len(items))
	for i, it := range items {
		p := parsed{it: it, at: it.Stored}
		p.pos, _ = strconv.ParseUint(it.Position, 10, 64)
		if p.at.IsZero() {
			if e, err := eventkit.UnmarshalEvent(it.Event); err == nil {
				p.at = e.Time()
			}
		}
		ps[i] = p
	}
	slices.SortStableFunc(ps, func(a, b parsed) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		// Positions compare within one store: the topics' (one log), then
		// the event store's.
		if c := cmpBool(strings.HasPrefix(a.it.Topic, "es:"), strings.HasPrefix(b.it.Topic, "es:")); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	out := make([]Item, len(ps))
	for i, p := range ps {
		out[i] = p.it
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// EventStoreSource is a Source on an event store: for an aggregate key,
// the events of that stream; for another key, the events of the global log
// that match it (read from the start, at most scanLimit events read, 0:
// no bound).
func EventStoreSource(store es.EventStore, scanLimit int) Source {
	return SourceFunc(func(ctx context.Context, q Query) ([]Item, bool, error) {
		if q.Key.Aggregate != "" {
			recs, err := store.ReadStream(ctx, q.Key.Aggregate, es.Forward, 0, 0)
			if err != nil {
				return nil, false, fmt.Errorf("probe: event store: %w", err)
			}
			return recordItems(recs, q, func(*es.RecordedEvent) bool { return true })
		}
		var out []Item
		var after uint64
		read := 0
		for scanLimit <= 0 || read < scanLimit {
			n := 1000
			if scanLimit > 0 {
				n = min(n, scanLimit-read)
			}
			recs, err := store.ReadAll(ctx, after, n)
			if err != nil {
				return nil, false, fmt.Errorf("probe: event store: %w", err)
			}
			items, more, err := recordItems(recs, q, func(r *es.RecordedEvent) bool { return q.Key.Match(&r.Event) })
			if err != nil {
				return nil, false, err
			}
			out = append(out, items...)
			if more || len(out) >= q.Limit {
				return out[:min(len(out), q.Limit)], true, nil
			}
			read += len(recs)
			if len(recs) < n {
				break
			}
			after = recs[len(recs)-1].Position
		}
		return out, false, nil
	})
}

// recordItems turns the records that keep passes and are in q's range into
// items, at most q.Limit of them.
func recordItems(recs []es.RecordedEvent, q Query, keep func(*es.RecordedEvent) bool) ([]Item, bool, error) {
	var out []Item
	for i := range recs {
		r := &recs[i]
		if !keep(r) || !q.InRange(r.RecordedAt) {
			continue
		}
		if len(out) == q.Limit {
			return out, true, nil
		}
		b, err := eventkit.MarshalEvent(r.Event)
		if err != nil {
			return nil, false, fmt.Errorf("probe: event store: %s: %w", r.StreamID, err)
		}
		out = append(out, Item{Position: strconv.FormatUint(r.Position, 10), Topic: "es:" + r.StreamID, Stored: r.RecordedAt, Event: b})
	}
	return out, false, nil
}
