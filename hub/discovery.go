package hub

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// Defaults of the Discovery API.
const (
	// DefaultDiscoveryMaxTypes bounds the (source, type) pairs kept.
	DefaultDiscoveryMaxTypes = 1000
	// DefaultDiscoveryMaxExampleBytes bounds an example event's JSON.
	DefaultDiscoveryMaxExampleBytes = 16 << 10
	// discoveryMaxKeyBytes bounds the source and type of a pair kept.
	discoveryMaxKeyBytes = 1024
)

// DiscoveryConfig bounds the memory of the Discovery API (GET /discovery),
// which lists the event types the server accepted, per source, with an
// example event of each.
type DiscoveryConfig struct {
	// MaxTypes bounds the (source, type) pairs kept
	// (DefaultDiscoveryMaxTypes). Once it is reached, events of a new pair
	// are not listed: they are counted in UntrackedEvents.
	MaxTypes int `yaml:"max_types"`
	// MaxExampleBytes bounds the JSON of an example event
	// (DefaultDiscoveryMaxExampleBytes): a larger one is kept without its
	// data (ExampleDataOmitted).
	MaxExampleBytes int `yaml:"max_example_bytes"`
}

// EventType is one (source, type) pair the server accepted events of.
type EventType struct {
	Source string `json:"source"`
	Type   string `json:"type"`
	// Count is the number of events accepted since the server started.
	Count     uint64    `json:"count"`
	FirstSeen time.Time `json:"firstseen"`
	LastSeen  time.Time `json:"lastseen"`
	// Example is the first event of the pair, in the CloudEvents JSON
	// format.
	Example json.RawMessage `json:"example"`
	// ExampleDataOmitted says that the example's data was left out, the
	// event being larger than MaxExampleBytes.
	ExampleDataOmitted bool `json:"exampledataomitted,omitempty"`
}

// Discovery is the body of GET /discovery.
type Discovery struct {
	// Types are sorted by source, then type.
	Types []EventType `json:"types"`
	// MaxTypes is the bound on len(Types) (DiscoveryConfig.MaxTypes).
	MaxTypes int `json:"maxtypes"`
	// UntrackedEvents counts the events accepted whose pair is not listed:
	// new pairs once MaxTypes were kept, or a source and type longer than
	// 1024 bytes together.
	UntrackedEvents uint64 `json:"untrackedevents"`
}

type typeKey struct{ source, typ string }

// discovery records the event types accepted by the ingress. Memory is
// bounded: at most maxTypes entries, each with its source and type (at most
// 1024 bytes together) and an example of at most maxExample bytes.
type discovery struct {
	maxTypes, maxExample int

	mu        sync.Mutex
	types     map[typeKey]*EventType
	untracked uint64
}

func newDiscovery(c DiscoveryConfig) *discovery {
	d := &discovery{maxTypes: c.MaxTypes, maxExample: c.MaxExampleBytes, types: map[typeKey]*EventType{}}
	if d.maxTypes <= 0 {
		d.maxTypes = DefaultDiscoveryMaxTypes
	}
	if d.maxExample <= 0 {
		d.maxExample = DefaultDiscoveryMaxExampleBytes
	}
	return d
}

// record notes events accepted.
func (d *discovery) record(events []event.Event) {
	now := time.Now().UTC()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range events {
		e := &events[i]
		k := typeKey{e.Source(), e.Type()}
		if t, ok := d.types[k]; ok {
			t.Count++
			t.LastSeen = now
			continue
		}
		if len(d.types) >= d.maxTypes || len(k.source)+len(k.typ) > discoveryMaxKeyBytes {
			d.untracked++
			continue
		}
		ex, omitted := d.example(*e)
		d.types[k] = &EventType{Source: k.source, Type: k.typ, Count: 1, FirstSeen: now, LastSeen: now,
			Example: ex, ExampleDataOmitted: omitted}
	}
}

// example is e in the CloudEvents JSON format, without its data when
// larger than the bound.
func (d *discovery) example(e event.Event) (json.RawMessage, bool) {
	b, err := eventkit.MarshalEvent(e)
	if err == nil && len(b) <= d.maxExample {
		return b, false
	}
	c := e.Clone()
	c.DataEncoded, c.DataBase64 = nil, false
	if b, err = eventkit.MarshalEvent(c); err != nil || len(b) > d.maxExample {
		// Only attributes are left; they are larger than the bound.
		return json.RawMessage(`null`), true
	}
	return b, true
}

func (d *discovery) snapshot(source, typ string) Discovery {
	d.mu.Lock()
	out := Discovery{Types: make([]EventType, 0, len(d.types)), MaxTypes: d.maxTypes, UntrackedEvents: d.untracked}
	for k, t := range d.types {
		if (source == "" || k.source == source) && (typ == "" || k.typ == typ) {
			out.Types = append(out.Types, *t)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out.Types, func(a, b EventType) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	return out
}

// ServeHTTP answers GET /discovery (?source= and ?type= select exactly).
func (d *discovery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	writeJSON(w, http.StatusOK, d.snapshot(q.Get("source"), q.Get("type")))
}

// publisher wraps p so that the events it publishes without error are
// recorded.
func (d *discovery) publisher(p eventkit.Publisher) eventkit.Publisher {
	return &observedPublisher{Publisher: p, seen: func(_ func(int) string, events []event.Event) { d.record(events) }}
}
