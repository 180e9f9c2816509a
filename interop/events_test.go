package interop

// The events every interop test sends, their typed description (the JSON
// the Python and Java programs read and write), and the comparison.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	ekbinding "github.com/eventkit/eventkit/binding"
)

// allBytes is every byte value, twice, in an order that is no valid UTF-8.
var allBytes = func() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(255 - i%256)
	}
	return b
}()

// eventTime has nanoseconds and is not UTC on input, so that precision and
// zone handling both show.
var eventTime = time.Date(2026, 12, 3, 14, 33, 19, 123456789, time.FixedZone("", 3600))

// extTime is a timestamp extension with nanoseconds.
var extTime = time.Date(1999, 12, 31, 23, 59, 58, 987654321, time.UTC)

// testEvents returns the events of a test case, their ids prefixed with
// prefix: every context attribute, every extension type, binary data of
// every byte value, JSON data, text data with non-ASCII characters, and an
// event with no data and only the required attributes.
func testEvents(prefix string) []event.Event {
	full := event.New()
	full.SetID(prefix + "-full")
	full.SetSource("https://example.com/interop/source?x=1&y=%20")
	full.SetType("com.example.interop.full")
	full.SetSubject("subject with spaces, \"quotes\", % and ünïcødé")
	full.SetDataSchema("https://example.com/schemas/full.json")
	full.SetTime(eventTime)
	must(full.SetData("application/octet-stream", allBytes))
	must(full.Context.SetExtension("extstring", "hello, wörld: 100% \"quoted\" ;=,"))
	must(full.Context.SetExtension("extint", int32(2147483647)))
	must(full.Context.SetExtension("extneg", int32(-2147483648)))
	must(full.Context.SetExtension("exttrue", true))
	must(full.Context.SetExtension("extfalse", false))
	must(full.Context.SetExtension("extbinary", []byte{0, 1, 2, 0xfe, 0xff}))
	must(full.Context.SetExtension("exturi", types.URI{URL: *mustURL("https://example.com/a/b?c=d&e=%C3%BC#frag")}))
	must(full.Context.SetExtension("exttime", types.Timestamp{Time: extTime}))

	js := event.New()
	js.SetID(prefix + "-json")
	js.SetSource("/interop/json")
	js.SetType("com.example.interop.json")
	js.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	must(js.SetData("application/json", []byte(`{"a":[1,2.5,"x",null,true],"b":{"c":"ünïcødé"}}`)))
	must(js.Context.SetExtension("extint", int32(0)))

	text := event.New()
	text.SetID(prefix + "-text")
	text.SetSource("urn:interop:text")
	text.SetType("com.example.interop.text")
	must(text.SetData("text/plain; charset=utf-8", []byte("line one\nline two: ünïcødé €\n")))

	minimal := event.New()
	minimal.SetID(prefix + "-minimal")
	minimal.SetSource("/interop")
	minimal.SetType("com.example.interop.minimal")
	return []event.Event{full, js, text, minimal}
}

// withoutPercent returns copies of evs with no '%' in any value that a
// binding carries in a header: for an SDK that does not percent-encode
// header values (docs/interop.md), whose '%' a receiver that follows the
// binding must decode.
func withoutPercent(evs []event.Event) []event.Event {
	return plainHeaders(evs, func(s string) string { return strings.ReplaceAll(s, "%", "") })
}

// asciiHeaders is withoutPercent, and without the characters outside
// ASCII, which an SDK that does not percent-encode sends as they are: the
// JDK's HttpClient replaces each by '?'.
func asciiHeaders(evs []event.Event) []event.Event {
	return plainHeaders(evs, func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '%' || r > 0x7e {
				return -1
			}
			return r
		}, s)
	})
}

// plainHeaders returns copies of evs with strip applied to every string
// value that a binding carries in a header.
func plainHeaders(evs []event.Event, strip func(string) string) []event.Event {
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		e = e.Clone()
		e.SetSource(strip(e.Source()))
		if e.Subject() != "" {
			e.SetSubject(strip(e.Subject()))
		}
		for k, v := range e.Extensions() {
			switch v := v.(type) {
			case string:
				must(e.Context.SetExtension(k, strip(v)))
			case types.URI:
				must(e.Context.SetExtension(k, types.URI{URL: *mustURL(strip(v.String()))}))
			}
		}
		out[i] = e
	}
	return out
}

// mustFormat is the canonical string of an attribute value.
func mustFormat(v any) string {
	s, err := types.Format(v)
	must(err)
	return s
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// typedValue is an attribute in the typed description: its CloudEvents
// type ("string", "integer", "boolean", "binary", "uri", "urireference",
// "timestamp") and its canonical string form.
type typedValue struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// described is the typed description of an event, the JSON that the
// Python and Java programs read (to build the event with their SDK's
// native types) and write (what their SDK read, with the type it gave each
// attribute).
type described struct {
	Attributes map[string]typedValue `json:"attributes"`
	// Data is the data's bytes, base64; absent when the event has none.
	Data *string `json:"data_base64,omitempty"`
	// Mode and Topic say, on the reading side, how the event came.
	Mode string `json:"mode,omitempty"`
}

// typeOf names the CloudEvents type of a Go SDK attribute value.
func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int32:
		return "integer"
	case bool:
		return "boolean"
	case []byte:
		return "binary"
	case types.URI:
		return "uri"
	case types.URIRef:
		return "urireference"
	case types.Timestamp:
		return "timestamp"
	}
	return fmt.Sprintf("%T", v)
}

// describe returns the typed description of e.
func describe(e event.Event) described {
	d := described{Attributes: map[string]typedValue{}}
	set := func(name, typ, v string) {
		if v != "" {
			d.Attributes[name] = typedValue{typ, v}
		}
	}
	set("specversion", "string", e.SpecVersion())
	set("id", "string", e.ID())
	set("source", "urireference", e.Source())
	set("type", "string", e.Type())
	set("subject", "string", e.Subject())
	set("dataschema", "uri", e.DataSchema())
	set("datacontenttype", "string", e.DataContentType())
	if !e.Time().IsZero() {
		set("time", "timestamp", e.Time().Format(time.RFC3339Nano))
	}
	for k, v := range e.Extensions() {
		s, err := types.Format(v)
		must(err)
		d.Attributes[k] = typedValue{typeOf(v), s}
	}
	if e.Data() != nil {
		s := base64.StdEncoding.EncodeToString(e.Data())
		d.Data = &s
	}
	return d
}

// comparison says which differences a case allows, each a documented
// property of the other side (docs/interop.md).
type comparison struct {
	// untyped: extensions arrive as strings (a binding that carries every
	// attribute as a header string, read by an SDK that does not know the
	// extension's type).
	untyped bool
	// jsonLike: extensions of the types that the JSON format cannot tell
	// from a string (binary, uri, urireference, timestamp) arrive as
	// strings; integers and booleans keep their type.
	jsonLike bool
	// precision truncates the times compared (Python's datetime keeps
	// microseconds).
	precision time.Duration
	// jsonData: JSON data may be re-encoded (same JSON value, other bytes).
	jsonData bool
	// skip names attributes the other side does not carry at all.
	skip []string
	// pctEncoded: header values arrive as the HTTP binding's
	// percent-encoding of the value (an SDK that does not decode them).
	pctEncoded bool
	// addsTime: the reader sets a time attribute on an event that has
	// none (the Python SDK's CloudEvent sets the current time).
	addsTime bool
	// keyAsPartitionKey: the reader turns a Kafka record's key into the
	// partitionkey attribute; eventkit's key is the subject when the event
	// has no partitionkey.
	keyAsPartitionKey bool
	// pythonBools: a boolean extension in a header is Python's str(bool),
	// "True" or "False" (the Python SDK's binary mode).
	pythonBools bool
}

// modeComparison is what a binding's mode itself loses, whoever reads:
// binary mode carries extensions as header strings, so a reader that does
// not know an extension gets a string; the JSON format (structured and
// batch mode) tells integers and booleans from strings, and nothing else.
func modeComparison(mode string) comparison {
	if mode == "binary" {
		return comparison{untyped: true}
	}
	return comparison{jsonLike: true}
}

// diff compares got with want under c, and returns the differences.
func (c comparison) diff(want, got described) []string {
	var out []string
	names := map[string]bool{}
	for k := range want.Attributes {
		names[k] = true
	}
	for k := range got.Attributes {
		names[k] = true
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(c.skip, k) {
			continue
		}
		w, wok := want.Attributes[k]
		g, gok := got.Attributes[k]
		switch {
		case !gok:
			out = append(out, fmt.Sprintf("%s: missing (want %s %q)", k, w.Type, w.Value))
		case !wok && k == "time" && c.addsTime:
		case !wok && k == "partitionkey" && c.keyAsPartitionKey && g.Value == want.Attributes["subject"].Value:
		case !wok:
			out = append(out, fmt.Sprintf("%s: unexpected %s %q", k, g.Type, g.Value))
		default:
			if d := c.diffValue(k, w, g); d != "" {
				out = append(out, k+": "+d)
			}
		}
	}
	out = append(out, c.diffData(want, got)...)
	return out
}

// isContext tells the context attributes, whose types every SDK knows.
func isContext(name string) bool {
	switch name {
	case "specversion", "id", "source", "type", "subject", "dataschema", "datacontenttype", "time":
		return true
	}
	return false
}

func (c comparison) diffValue(name string, w, g typedValue) string {
	wantType := w.Type
	if !isContext(name) {
		switch {
		case c.untyped:
			wantType = "string"
		case c.jsonLike && w.Type != "integer" && w.Type != "boolean":
			wantType = "string"
		}
	}
	if g.Type != wantType && !(isContext(name) && stringish(g.Type) && stringish(wantType)) {
		return fmt.Sprintf("type %s, want %s (value %q)", g.Type, wantType, g.Value)
	}
	if w.Type == "timestamp" {
		wt, err1 := time.Parse(time.RFC3339Nano, w.Value)
		gt, err2 := time.Parse(time.RFC3339Nano, g.Value)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("timestamp %q, want %q", g.Value, w.Value)
		}
		// A writer or reader with a coarser clock (precision) cuts the
		// fraction, whether the value is a timestamp or a string.
		if !wt.Equal(gt) && !(c.precision > 0 && wt.Truncate(c.precision).Equal(gt)) {
			return fmt.Sprintf("time %s, want %s", gt.UTC().Format(time.RFC3339Nano), wt.UTC().Format(time.RFC3339Nano))
		}
		return ""
	}
	if c.pythonBools && w.Type == "boolean" && g.Type == "string" && (g.Value == "True" || g.Value == "False") {
		g.Value = strings.ToLower(g.Value)
	}
	if w.Value != g.Value && !(c.pctEncoded && g.Value == ekbinding.EncodeHeaderValue(w.Value)) {
		return fmt.Sprintf("%q, want %q", g.Value, w.Value)
	}
	return ""
}

// stringish tells the types whose values are strings in every SDK's
// model of the context attributes (an SDK may call source a URI-reference
// or a string; the value is what counts).
func stringish(t string) bool {
	return t == "string" || t == "uri" || t == "urireference"
}

func (c comparison) diffData(want, got described) []string {
	var w, g []byte
	if want.Data != nil {
		w, _ = base64.StdEncoding.DecodeString(*want.Data)
	}
	if got.Data != nil {
		g, _ = base64.StdEncoding.DecodeString(*got.Data)
	}
	if bytes.Equal(w, g) {
		return nil
	}
	if c.jsonData && json.Valid(w) && json.Valid(g) && sameJSON(w, g) {
		return nil
	}
	return []string{fmt.Sprintf("data: %d bytes %s, want %d bytes %s", len(g), clip(g), len(w), clip(w))}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

func clip(b []byte) string {
	s := strconv.Quote(string(b))
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// checkEvents compares the events received (in any order) with those
// sent, matched by id, and fails t with every difference.
func checkEvents(t *testing.T, where string, c comparison, want []event.Event, got []described) {
	t.Helper()
	byID := map[string]described{}
	for _, g := range got {
		id := g.Attributes["id"].Value
		if _, dup := byID[id]; dup {
			t.Errorf("%s: event %q received twice", where, id)
		}
		byID[id] = g
	}
	for _, w := range want {
		g, ok := byID[w.ID()]
		if !ok {
			t.Errorf("%s: event %q not received", where, w.ID())
			continue
		}
		delete(byID, w.ID())
		if d := c.diff(describe(w), g); len(d) > 0 {
			t.Errorf("%s: event %q differs:\n\t%s", where, w.ID(), strings.Join(d, "\n\t"))
		}
	}
	for id := range byID {
		t.Errorf("%s: unexpected event %q", where, id)
	}
}

// describeAll describes events.
func describeAll(evs []event.Event) []described {
	out := make([]described, len(evs))
	for i, e := range evs {
		out[i] = describe(e)
	}
	return out
}

// publish publishes evs to topic on pub.
func publish(t *testing.T, pub eventkit.Publisher, topic string, evs ...event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := pub.Publish(ctx, topic, evs...); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}
