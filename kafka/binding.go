package kafka

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
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
	r := &kgo.Record{Topic: kafkaTopic}
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
	hs := make([]kgo.RecordHeader, 0, 8+len(e.Extensions()))
	binding.Attributes(e, false, func(name, value string) {
		hs = append(hs, kgo.RecordHeader{Key: HeaderPrefix + name, Value: []byte(value)})
	})
	if ct := e.DataContentType(); ct != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ct)})
	}
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
	e := event.New()
	seenVersion := false
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, HeaderPrefix) {
			continue
		}
		name := h.Key[len(HeaderPrefix):]
		if name == "datacontenttype" {
			continue // carried by content-type in binary mode
		}
		if !binding.IsAttributeName(name) {
			return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: "header " + h.Key + " does not name a CloudEvents attribute"}
		}
		if name == "specversion" {
			seenVersion = true
		}
		if err := binding.Set(&e, name, string(h.Value)); err != nil {
			return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	if !seenVersion {
		return event.Event{}, fmt.Errorf("%w: %s/%d@%d has no %sspecversion header", ErrNotCloudEvent, r.Topic, r.Partition, r.Offset, HeaderPrefix)
	}
	if ct != "" {
		e.SetDataContentType(ct)
	}
	if len(r.Value) > 0 {
		e.DataEncoded = r.Value
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, fmt.Errorf("kafka: record at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return e, nil
}
