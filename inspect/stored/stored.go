// Package stored holds the item that the inspection APIs answer: one
// stored event with its position, its topic and the time its store took
// it, the event either decoded (Item) or as CloudEvents JSON (RawItem).
//
// Package inspect (events read back and replayed) answers Items; package
// probe (a flow followed across topics), whose timelines keep an event that
// cannot be decoded, answers RawItems. Both write the same JSON object:
//
//	{"position":"7","topic":"orders","stored":"2026-01-02T03:04:05.000000006Z","event":{…}}
//
// with "stored" left out when the store time is unknown (zero). The package
// imports only the root package, so that a user of probe does not link
// inspect's filters.
package stored

import (
	"encoding/json"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// Item is one stored event, decoded.
type Item struct {
	// Position is where the transport stored the event (Message.Position).
	Position string
	// Topic is the topic the event was published to.
	Topic string
	// Stored is when the broker stored the event, when the source knows
	// it (the server's API does; a Subscriber does not), else zero.
	Stored time.Time
	// Event is the event.
	Event event.Event
}

// RawItem is one stored event with the event in the CloudEvents JSON
// format, as it travels: it holds an event that cannot be decoded too.
type RawItem struct {
	// Position is the event's place in its store.
	Position string `json:"position"`
	// Topic is the topic it is stored under.
	Topic string `json:"topic"`
	// Stored is the time its store took it (zero: unknown).
	Stored time.Time `json:"stored,omitzero"`
	// Event is the event in the CloudEvents JSON format.
	Event json.RawMessage `json:"event"`
}

// Raw returns it with its event in the CloudEvents JSON format
// (eventkit.MarshalEvent) and its store time in UTC.
func (it Item) Raw() (RawItem, error) {
	b, err := eventkit.MarshalEvent(it.Event)
	if err != nil {
		return RawItem{}, err
	}
	return RawItem{Position: it.Position, Topic: it.Topic, Stored: it.Stored.UTC(), Event: b}, nil
}

// Decode returns it with its event decoded (eventkit.UnmarshalEvent).
func (it RawItem) Decode() (Item, error) {
	e, err := eventkit.UnmarshalEvent(it.Event)
	if err != nil {
		return Item{}, err
	}
	return Item{Position: it.Position, Topic: it.Topic, Stored: it.Stored, Event: e}, nil
}

// MarshalJSON writes the item as its RawItem: the event in the CloudEvents
// JSON format, the store time in RFC 3339 with nanoseconds, in UTC.
func (it Item) MarshalJSON() ([]byte, error) {
	r, err := it.Raw()
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads an item as MarshalJSON writes it.
func (it *Item) UnmarshalJSON(b []byte) error {
	var r RawItem
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	d, err := r.Decode()
	if err != nil {
		return err
	}
	*it = d
	return nil
}
