package kafka

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
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
// carries no CloudEvent in either mode.
var ErrNotCloudEvent = errors.New("kafka: record is not a CloudEvent")

// Encode returns the record that carries e to the Kafka topic kafkaTopic by
// the CloudEvents Kafka binding: binary mode, or structured mode when
// structured is true. The key is eventkit.EventKey(e) (nil when empty). e
// is not validated here.
func Encode(kafkaTopic string, e event.Event, structured bool) (*kgo.Record, error) {
	rh := new(recordWithHeaders) // the record and its usual headers in one allocation
	r := &rh.r
	r.Topic = kafkaTopic
	if k := eventkit.EventKey(e); k != "" {
		r.Key = []byte(k)
	}
	if structured {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return nil, fmt.Errorf("kafka: encode event %q: %w", e.ID(), err)
		}
		r.Value = b
		r.Headers = []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(structuredContentType)}}
		return r, nil
	}
	hs := binaryHeaders(e, rh.h[:0])
	r.Headers = hs
	if d := e.Data(); len(d) > 0 {
		r.Value = d
	}
	return r, nil
}

// Decode returns the CloudEvent a record carries, in binary or structured
// mode (told apart by the content-type header). The event is validated
// (eventkit.ValidateEvent). A record without CloudEvents headers gives an
// error wrapping ErrNotCloudEvent.
func Decode(r *kgo.Record) (event.Event, error) {
	var ct string
	binary := false
	for _, h := range r.Headers {
		if h.Key == HeaderContentType {
			ct = string(h.Value)
		} else if strings.HasPrefix(h.Key, HeaderPrefix) {
			binary = true
		}
	}
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	if mt == eventkit.MediaTypeCloudEvents {
		e, err := eventkit.UnmarshalEvent(r.Value)
		if err != nil {
			return event.Event{}, fmt.Errorf("kafka: structured record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return e, nil
	}
	if !binary {
		return event.Event{}, fmt.Errorf("%w: %s/%d@%d has no %sspecversion header", ErrNotCloudEvent, r.Topic, r.Partition, r.Offset, HeaderPrefix)
	}
	// One string holds every attribute value: one allocation, not one each.
	size := len(ct)
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, HeaderPrefix) {
			size += len(h.Value)
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	ec := &event.EventContextV1{}
	e := event.Event{Context: ec}
	seenVersion := false
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			continue
		}
		name := h.Key[len(HeaderPrefix):]
		start := sb.Len()
		sb.Write(h.Value)
		value := func() string { return sb.String()[start:] }
		var err error
		switch name {
		case "datacontenttype":
			continue // carried by content-type in binary mode
		case "specversion":
			seenVersion = true
			if string(h.Value) != event.CloudEventsVersionV1 {
				err = &eventkit.ValidationError{Attribute: "specversion", Reason: "unsupported version \"" + string(h.Value) + "\" (want \"1.0\")"}
			}
		case "id":
			ec.ID = value()
		case "type":
			ec.Type = value()
		case "source":
			ec.Source, err = parseSource(h.Value)
		case "subject":
			sub := value()
			ec.Subject = &sub
		default:
			if !binding.IsAttributeName(name) {
				return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: "header " + h.Key + " does not name a CloudEvents attribute"}
			}
			err = binding.Set(&e, name, value())
		}
		if err != nil {
			return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	if !seenVersion {
		return event.Event{}, fmt.Errorf("%w: %s/%d@%d has no %sspecversion header", ErrNotCloudEvent, r.Topic, r.Partition, r.Offset, HeaderPrefix)
	}
	if ct != "" {
		ctv := ct
		ec.DataContentType = &ctv
	}
	if len(r.Value) > 0 {
		e.DataEncoded = r.Value
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return e, nil
}

// specVersionValue is the one value of ce_specversion, shared by records.
var specVersionValue = []byte(event.CloudEventsVersionV1)

// recordWithHeaders allocates a record with room for the headers of an
// event with a few optional attributes and extensions.
type recordWithHeaders struct {
	r kgo.Record
	h [8]kgo.RecordHeader
}

// binaryHeaders returns the binary-mode headers of e: one allocation for
// the values, constant keys for the context attributes.
func binaryHeaders(e event.Event, hs []kgo.RecordHeader) []kgo.RecordHeader {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		binding.Attributes(e, false, func(name, value string) {
			hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + name, Value: []byte(value)})
		})
		if ct := e.DataContentType(); ct != "" {
			hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ct)})
		}
		return hs
	}
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
	size := len(ec.ID) + len(source) + len(ec.Type)
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
	size += len(subject) + len(tm) + len(schema) + len(ct)
	vals := make([]string, len(names))
	for i, k := range names {
		vals[i] = binding.FormatValue(ec.Extensions[k])
		size += len(vals[i])
	}
	buf := make([]byte, 0, size)
	add := func(key, v string) {
		start := len(buf)
		buf = append(buf, v...)
		hs = append(hs, kgo.RecordHeader{Key: key, Value: buf[start:len(buf):len(buf)]})
	}
	hs = append(hs, kgo.RecordHeader{Key: "ce_specversion", Value: specVersionValue})
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
	return hs
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
