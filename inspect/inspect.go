// Package inspect reads the events a persistent transport has stored and
// replays them: the library behind "eventkit read" and "eventkit replay".
// It imports no driver: it works on any eventkit.Subscriber that declares
// eventkit.CapStartAtTime (to start at a time) or
// eventkit.CapStartAtPosition (to start after a position), and on any
// eventkit.Publisher to replay to (an HTTP URL through cehttp.NewPublisher).
//
// Read subscribes without a group (or, with Query.Group, under a group the
// caller names, such as a throw-away one from ThrowAwayGroup), passes the
// events that match the query's attribute filters and CloudEvents SQL
// expression, and stops by itself once it has caught up. A second
// subscription, started at Query.Until (or, for "the current end", at the
// time Read started plus a few milliseconds), learns the positions of the
// events stored after the end. On one topic, Read stops at the first of
// them it meets. With a pattern, each topic (a stream, a log) keeps its
// own order, so an event after the end ends only its topic: Read skips
// that topic's later events and stops when no event of the range came for
// Query.Idle. It also stops after Query.Idle without any event: the
// transport has delivered everything it stored.
//
// Read and Replay rely on the transport delivering each topic's events in
// the order it stored them. On a Kafka topic of several partitions the
// order holds per partition only: the end of the range is met on one
// partition, and a resumed replay restarts the other partitions at their
// oldest events (at least once). Pulsar stores a producer's events in
// batches per key; Read returns them in that, stored, order.
//
// Replay publishes what Read returns, unchanged (same id and source, so
// that a consumer that deduplicates drops the events a resumed replay
// sends twice), rate-limited, and writes a Checkpoint after each batch
// published. A replay resumed from its checkpoint starts at the position
// of the last event it published and skips that event, so that events
// stored at the same time as it (which a restart at a time would either
// repeat or skip) are each replayed once; on a transport without
// positions it starts at the range's beginning again and skips the events
// it already replayed, by count. Delivery is at least once: the events
// published after the last checkpoint written are published again.
package inspect

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cefilter"
	"github.com/eventkit/eventkit/inspect/stored"
	"github.com/eventkit/eventkit/topic"
)

// DefaultIdle is how long Read waits for the next event before it
// decides that it has caught up, when Query.Idle is zero.
const DefaultIdle = 2 * time.Second

// maxEndPositions bounds the positions after the end that Read remembers.
const maxEndPositions = 100_000

// Query selects stored events.
type Query struct {
	// Topic is the topic pattern (package topic); "" is ">", every topic.
	Topic string `json:"topic,omitempty"`
	// Since starts at the first event stored at or after it. With neither
	// Since nor After, Read starts at the oldest event retained.
	Since time.Time `json:"since,omitzero"`
	// After starts after the event at this position (a Message.Position
	// of the same transport). It takes precedence over Since.
	After string `json:"after,omitempty"`
	// Until ends before the first event stored at or after it; zero is the
	// current end (the time Read starts).
	Until time.Time `json:"until,omitzero"`
	// Filter passes the events whose attributes (or extensions) have
	// exactly these values.
	Filter map[string]string `json:"filter,omitempty"`
	// SQL is a CloudEvents SQL expression an event must satisfy.
	SQL string `json:"sql,omitempty"`
	// Limit is the most events returned; 0 is no limit.
	Limit int `json:"limit,omitempty"`
	// Group subscribes under this consumer group instead of alone (for a
	// transport that reads a position only in a group). Name a group no
	// one else uses: see ThrowAwayGroup.
	Group string `json:"-"`
	// Idle is how long Read waits for an event before it decides it has
	// caught up (DefaultIdle when zero).
	Idle time.Duration `json:"-"`
}

// ThrowAwayGroup returns a new group name, "eventkit-inspect-" and random
// hex, for Query.Group.
func ThrowAwayGroup() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "eventkit-inspect-" + hex.EncodeToString(b[:])
}

// Item is one stored event, decoded: its position, topic, store time
// (zero when the source does not know it: a Subscriber does not, the
// server's API does) and event. Its JSON form is the server's API's:
// the event in the CloudEvents JSON format, the store time in RFC 3339
// with nanoseconds (see package stored).
type Item = stored.Item

// Result says where a read stopped.
type Result struct {
	// Next is the position of the last event read (matching or not), to
	// pass as Query.After to continue; "" when nothing was read.
	Next string `json:"next"`
	// More is true when Read stopped at Query.Limit with events left.
	More bool `json:"more"`
}

// Matcher tells whether an event passes a query's filters.
type Matcher struct {
	filter []attr
	sql    *cefilter.SQL
}

type attr struct{ name, value string }

// ErrInvalidQuery wraps the reasons a query is refused.
var ErrInvalidQuery = errors.New("inspect: invalid query")

// Compile checks q's topic pattern, filters and SQL, and returns the
// matcher of its filters. Every error wraps ErrInvalidQuery.
func (q Query) Compile() (*Matcher, error) {
	if q.Topic != "" {
		if err := topic.ValidatePattern(q.Topic); err != nil {
			return nil, fmt.Errorf("%w: topic: %v", ErrInvalidQuery, err)
		}
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("%w: limit must not be negative", ErrInvalidQuery)
	}
	if !q.Until.IsZero() && !q.Since.IsZero() && !q.Until.After(q.Since) {
		return nil, fmt.Errorf("%w: until must be after since", ErrInvalidQuery)
	}
	m := &Matcher{}
	for name, v := range q.Filter {
		if name == "" {
			return nil, fmt.Errorf("%w: filter: empty attribute name", ErrInvalidQuery)
		}
		m.filter = append(m.filter, attr{name, v})
	}
	sort.Slice(m.filter, func(i, j int) bool { return m.filter[i].name < m.filter[j].name })
	if q.SQL != "" {
		s, err := cefilter.ParseSQL(q.SQL)
		if err != nil {
			return nil, fmt.Errorf("%w: sql: %v", ErrInvalidQuery, err)
		}
		m.sql = s
	}
	return m, nil
}

// Match reports whether e passes every filter: each attribute equal to
// its value (cefilter.Attribute's canonical form) and the SQL expression
// true.
func (m *Matcher) Match(e event.Event) bool {
	for _, a := range m.filter {
		if v, ok := cefilter.Attribute(e, a.name); !ok || v != a.value {
			return false
		}
	}
	if m.sql != nil {
		ok, err := m.sql.Eval(e)
		return err == nil && ok
	}
	return true
}
