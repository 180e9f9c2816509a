package kafka

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderPrefix is the prefix of the record headers that carry CloudEvents
// attributes in binary mode.
const HeaderPrefix = "ce_"

// HeaderContentType is the record header that carries datacontenttype in
// binary mode and the event format's media type in structured mode.
const HeaderContentType = "content-type"

// structuredContentType is the content-type of a structured-mode record.
const structuredContentType = eventkit.MediaTypeCloudEvents + "; charset=UTF-8"

// ErrNotCloudEvent is wrapped by the error of Decode for a record that
// carries no CloudEvent in either mode. It wraps eventkit.ErrNotCloudEvent,
// which is what callers should test for.
//
// Deprecated: use eventkit.ErrNotCloudEvent.
var ErrNotCloudEvent = fmt.Errorf("kafka: record is not a CloudEvent: %w", eventkit.ErrNotCloudEvent)

// Encode returns the record that carries e to the Kafka topic kafkaTopic by
// the CloudEvents Kafka binding: binary mode, or structured mode when
// structured is true. The key is eventkit.EventKey(e) (nil when empty). e
// is not validated here.
func Encode(kafkaTopic string, e event.Event, structured bool) (*kgo.Record, error) {
	r := new(kgo.Record)
	a := arena{left: 1}
	if err := a.encode(r, kafkaTopic, e, structured); err != nil {
		return nil, err
	}
	return r, nil
}

// arena hands out the headers and the header and key bytes of the records
// of one publish call from a few shared chunks, instead of allocating them
// record by record. Every piece it returns is capped to its length, so an
// append to one never writes over another.
type arena struct {
	hs   []kgo.RecordHeader // free header slots (len 0)
	buf  []byte             // free bytes (len 0)
	left int                // records still to encode after the current one, to size new chunks
}

// arenaChunk is the least a new chunk of bytes holds.
const arenaChunk = 4096

// headers returns room for n headers (len 0, cap n).
func (a *arena) headers(n int) []kgo.RecordHeader {
	if cap(a.hs) < n {
		a.hs = make([]kgo.RecordHeader, 0, max(n, min(5*(a.left+1), 1024)))
	}
	hs := a.hs[:0:n]
	a.hs = a.hs[n:n]
	return hs
}

// bytes returns room for n bytes (len 0, cap n).
func (a *arena) bytes(n int) []byte {
	if cap(a.buf) < n {
		a.buf = make([]byte, 0, max(n, min(n*(a.left+1), arenaChunk)))
	}
	b := a.buf[:0:n]
	a.buf = a.buf[n:n]
	return b
}

// encode fills r, a zero record, with e for kafkaTopic.
func (a *arena) encode(r *kgo.Record, kafkaTopic string, e event.Event, structured bool) error {
	a.left--
	r.Topic = kafkaTopic
	ec, v1 := e.Context.(*event.EventContextV1)
	k := eventkit.EventKey(e)
	if structured {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("kafka: encode event %q: %w", e.ID(), err)
		}
		r.Value = b
		r.Headers = append(a.headers(1), kgo.RecordHeader{Key: HeaderContentType, Value: structuredContentTypeValue})
		if k != "" {
			r.Key = append(a.bytes(len(k)), k...)
		}
		return nil
	}
	if !v1 {
		r.Headers = otherHeaders(e)
		if k != "" {
			r.Key = []byte(k)
		}
	} else {
		r.Headers = a.binaryHeaders(ec, k, &r.Key)
	}
	// An event without data has an empty value, never a null one: a null
	// value is a tombstone, which compaction treats as a delete of its key
	// and which consumers such as the Java SDK's deserializer read as no
	// event at all.
	r.Value = emptyValue
	if d := e.Data(); len(d) > 0 {
		r.Value = d
	}
	return nil
}

// emptyValue is the value of a binary-mode record whose event has no data.
var emptyValue = []byte{}

// Decode returns the CloudEvent a record carries, in binary or structured
// mode (told apart by the content-type header). The event is validated:
// Decode returns an error for every record whose event
// eventkit.ValidateEvent refuses (for most records it checks the id alone,
// when the other attributes are those of a record that passed). A record
// without CloudEvents headers gives an error wrapping ErrNotCloudEvent.
func Decode(r *kgo.Record) (event.Event, error) {
	var d decoded
	return d.decode(r, nil)
}

// decoded holds what a binary-mode event points to, so that a subscription
// allocates it with the record's other state (in a slab of entries).
type decoded struct {
	ec event.EventContextV1
	ct string // *ec.DataContentType
}

// isCloudEventsJSON reports whether a content-type names the structured
// JSON format: its media type, before any parameters and without spaces, is
// application/cloudevents+json in any case.
func isCloudEventsJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	const want = eventkit.MediaTypeCloudEvents // lower-case ASCII
	if len(ct) != len(want) {
		return false
	}
	for i := range len(want) {
		c := ct[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// decode decodes r into an event whose binary-mode context is d's. The
// attribute strings are copied into v, or into a string of their own when v
// is nil.
func (d *decoded) decode(r *kgo.Record, v *values) (event.Event, error) {
	var ct []byte
	hasCT, binary := false, false
	size := 0
	for i := range r.Headers {
		h := &r.Headers[i]
		if h.Key == HeaderContentType {
			ct, hasCT = h.Value, true
		} else if strings.HasPrefix(h.Key, HeaderPrefix) {
			binary = true
			size += len(h.Value)
		}
	}
	if hasCT && isCloudEventsJSON(ct) {
		e, err := eventkit.UnmarshalEvent(r.Value)
		if err != nil {
			return event.Event{}, fmt.Errorf("kafka: structured record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return e, nil
	}
	if !binary {
		return event.Event{}, fmt.Errorf("%w: %s/%d@%d has no %sspecversion header", ErrNotCloudEvent, r.Topic, r.Partition, r.Offset, HeaderPrefix)
	}
	if v == nil {
		v = new(values)
		v.sb.Grow(size + len(ct))
	}
	return d.decodeBinary(r, ct, v)
}

// values copies header values into a few strings: one allocation for the
// values of many records, not one each. A string taken from it never
// changes: the Builder only appends, and when it grows it copies into a new
// buffer, leaving the bytes of the strings taken before where they are.
type values struct{ sb strings.Builder }

func (v *values) add(b []byte) string {
	start := v.sb.Len()
	v.sb.Write(b)
	return v.sb.String()[start:]
}

// position returns the Message.Position of the record at offset of
// partition part ("<partition>:<offset>").
func (v *values) position(part int32, offset int64) string {
	var b [24]byte
	p := strconv.AppendInt(b[:0], int64(part), 10)
	p = append(p, ':')
	return v.add(strconv.AppendInt(p, offset, 10))
}

// decodeBinary decodes a binary-mode record, whose content type is ct,
// copying its attribute values into v.
func (d *decoded) decodeBinary(r *kgo.Record, ct []byte, v *values) (event.Event, error) {
	e := event.Event{Context: &d.ec}
	seenVersion, plain := false, true
	var source []byte
	for i := range r.Headers {
		h := &r.Headers[i]
		name, ok := strings.CutPrefix(h.Key, HeaderPrefix)
		if !ok {
			continue
		}
		switch name {
		case "specversion":
			seenVersion = true
		case "source":
			source = h.Value
		case "id", "type", "datacontenttype":
		default:
			plain = false
		}
		if err := d.set(&e, name, h.Value, v); err != nil {
			return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	if !seenVersion {
		return event.Event{}, fmt.Errorf("%w: %s/%d@%d has no %sspecversion header", ErrNotCloudEvent, r.Topic, r.Partition, r.Offset, HeaderPrefix)
	}
	if len(ct) > 0 {
		d.ct = v.add(ct)
		d.ec.DataContentType = &d.ct
	}
	if len(r.Value) > 0 {
		e.DataEncoded = r.Value
	}
	if plain && validShape(source, d.ec.Type, ct) && printableID(d.ec.ID) {
		return e, nil
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if plain {
		lastShape.Store(&shape{source: string(source), typ: d.ec.Type, ct: string(ct)})
	}
	return e, nil
}

// shape is what eventkit.ValidateEvent looks at in an event decoded from a
// record whose only ce_ headers are specversion, id, source, type (and
// datacontenttype, which binary mode ignores), besides the id: the
// source's header value, the type and the content-type header's value
// ("" for none, which leaves datacontenttype unset).
type shape struct{ source, typ, ct string }

// lastShape is the shape of the last such event that passed
// eventkit.ValidateEvent. A stream mostly repeats a few shapes, so that
// decoding checks only the id of most records: an event of the same shape
// whose id is printableID is valid, since the source is parsed from the
// same value and the id alone is left to check. Anything else goes through
// eventkit.ValidateEvent.
var lastShape atomic.Pointer[shape]

func validShape(source []byte, typ string, ct []byte) bool {
	s := lastShape.Load()
	return s != nil && s.typ == typ && s.source == string(source) && s.ct == string(ct)
}

// printableID reports whether id is a non-empty run of printable ASCII
// characters without spaces, which ValidateEvent accepts as an id. It
// returns false for some valid ids (spaces, non-ASCII), which
// ValidateEvent then checks.
func printableID(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return false
		}
	}
	return id != ""
}

// set sets the attribute name of e, whose context is d's, from a ce_
// header's value.
func (d *decoded) set(e *event.Event, name string, value []byte, v *values) error {
	ec := &d.ec
	var err error
	switch name {
	case "datacontenttype": // carried by content-type in binary mode
	case "specversion":
		if string(value) != event.CloudEventsVersionV1 {
			err = &eventkit.ValidationError{Attribute: "specversion", Reason: "unsupported version \"" + string(value) + "\" (want \"1.0\")"}
		}
	case "id":
		ec.ID = v.add(value)
	case "type":
		ec.Type = v.add(value)
	case "source":
		ec.Source, err = parseSource(value)
	case "subject":
		sub := v.add(value)
		ec.Subject = &sub
	default:
		if !binding.IsAttributeName(name) {
			return &eventkit.ValidationError{Attribute: name, Reason: "header " + HeaderPrefix + name + " does not name a CloudEvents attribute"}
		}
		err = binding.Set(e, name, v.add(value))
	}
	return err
}

// specVersionValue is the one value of ce_specversion, shared by records.
var specVersionValue = []byte(event.CloudEventsVersionV1)

// structuredContentTypeValue is the content-type header value of a
// structured-mode record, shared by records.
var structuredContentTypeValue = []byte(structuredContentType)

// otherHeaders returns the binary-mode headers of an event whose context is
// not CloudEvents 1.0 (which publishing rejects; Encode does not validate).
func otherHeaders(e event.Event) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	binding.Attributes(e, false, func(name, value string) {
		hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + name, Value: []byte(value)})
	})
	if ct := e.DataContentType(); ct != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ct)})
	}
	return hs
}

// binaryHeaders returns the binary-mode headers of the context ec, with
// constant keys for the context attributes and the values (and the record
// key k, stored in *key when not empty) in one piece of the arena.
func (a *arena) binaryHeaders(ec *event.EventContextV1, k string, key *[]byte) []kgo.RecordHeader {
	source := formatSource(ec.Source)
	var names []string
	if n := len(ec.Extensions); n > 0 {
		names = make([]string, 0, n)
		for k := range ec.Extensions {
			names = append(names, k)
		}
		if n > 1 {
			slices.Sort(names)
		}
	}
	nh := 4 + len(names) // specversion, id, source, type, extensions
	size := len(k) + len(ec.ID) + len(source) + len(ec.Type)
	var subject, tm, schema, ct string
	if ec.Subject != nil {
		subject = *ec.Subject
	}
	if ec.Time != nil && !ec.Time.IsZero() {
		tm = ec.Time.Time.Format(time.RFC3339Nano)
	}
	if ec.DataSchema != nil {
		schema = ec.DataSchema.String()
	}
	if ec.DataContentType != nil {
		ct = *ec.DataContentType
	}
	for _, v := range [...]string{subject, tm, schema, ct} {
		if v != "" {
			nh++
			size += len(v)
		}
	}
	var vals []string
	if len(names) > 0 {
		vals = make([]string, len(names))
		for i, k := range names {
			vals[i] = binding.FormatValue(ec.Extensions[k])
			size += len(vals[i])
		}
	}
	buf := a.bytes(size)
	if k != "" {
		buf = append(buf, k...)
		*key = buf[:len(k):len(k)]
	}
	// The headers are set field by field: appending whole structs costs a
	// bulk write barrier each while the garbage collector runs.
	hs := a.headers(nh)[:nh]
	n := 0
	add := func(key, v string) {
		start := len(buf)
		buf = append(buf, v...)
		h := &hs[n]
		h.Key, h.Value = key, buf[start:len(buf):len(buf)]
		n++
	}
	hs[0].Key, hs[0].Value = "ce_specversion", specVersionValue
	n++
	add("ce_id", ec.ID)
	add("ce_source", source)
	add("ce_type", ec.Type)
	if subject != "" {
		add("ce_subject", subject)
	}
	if tm != "" {
		add("ce_time", tm)
	}
	if schema != "" {
		add("ce_dataschema", schema)
	}
	for i, k := range names {
		add(HeaderPrefix+k, vals[i])
	}
	if ct != "" {
		add(HeaderContentType, ct)
	}
	return hs[:n]
}

// sourceCache remembers the last source parsed: a stream mostly repeats a
// few sources, and url.Parse is the dearest step of decoding.
type sourceCache struct {
	s   string
	ref types.URIRef
}

var lastSource atomic.Pointer[sourceCache]

func parseSource(b []byte) (types.URIRef, error) {
	if c := lastSource.Load(); c != nil && c.s == string(b) {
		return c.ref, nil
	}
	s := string(b)
	u, err := url.Parse(s)
	if err != nil {
		return types.URIRef{}, &eventkit.ValidationError{Attribute: "source", Reason: "must be a URI-reference: " + err.Error()}
	}
	ref := types.URIRef{URL: *u}
	lastSource.Store(&sourceCache{s: s, ref: ref})
	return ref, nil
}

// lastFormatted remembers the last source formatted, for the same reason.
var lastFormatted atomic.Pointer[sourceCache]

func formatSource(ref types.URIRef) string {
	if c := lastFormatted.Load(); c != nil && c.ref.URL == ref.URL {
		return c.s
	}
	s := ref.String()
	lastFormatted.Store(&sourceCache{s: s, ref: ref})
	return s
}
