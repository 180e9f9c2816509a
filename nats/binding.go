package nats

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/jsonvalid"
	"github.com/nats-io/nats.go"
)

// Header names of the CloudEvents NATS protocol binding and of JetStream.
const (
	// HeaderPrefix starts the header of each attribute in binary mode.
	HeaderPrefix = "ce-"
	// HeaderContentType carries the media type of a structured-mode message.
	HeaderContentType = "content-type"
	// HeaderMsgID is JetStream's de-duplication header.
	HeaderMsgID = nats.MsgIdHdr
)

// Mode is how events are put in NATS messages: eventkit.Binary (each
// attribute in a "ce-" header, percent-encoded as the binding prescribes,
// datacontenttype in "ce-datacontenttype", the data as the payload) or
// eventkit.Structured (the whole event in the payload in the CloudEvents
// JSON format, with content-type application/cloudevents+json).
//
// Deprecated: use eventkit.Mode, the type every transport shares.
type Mode = eventkit.Mode

const (
	// Binary is eventkit.Binary.
	//
	// Deprecated: use eventkit.Binary.
	Binary = eventkit.Binary
	// Structured is eventkit.Structured.
	//
	// Deprecated: use eventkit.Structured.
	Structured = eventkit.Structured
)

// EncodeMsg returns the NATS message for e published on subject, in mode.
// It does not set the JetStream de-duplication header.
func EncodeMsg(subject string, e event.Event, mode Mode) (*nats.Msg, error) {
	m, _, err := encodeMsg(subject, e, mode, 0)
	return m, err
}

// encodeMsg is EncodeMsg with room for extra header entries; it also
// returns the event's source, which the caller needs for the
// de-duplication id (getting it from the event again costs an allocation).
func encodeMsg(subject string, e event.Event, mode Mode, room int) (*nats.Msg, string, error) {
	if mode == Structured {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return nil, "", fmt.Errorf("encode event %q: %w", e.ID(), err)
		}
		m := &nats.Msg{Subject: subject, Header: make(nats.Header, 1+room), Data: b}
		m.Header[HeaderContentType] = []string{eventkit.MediaTypeCloudEvents}
		return m, e.Source(), nil
	}
	// The exact number of entries: a map of up to 8 is one allocation, and
	// a larger hint would make it bigger than needed.
	n := 4 + len(e.Extensions()) + room
	if e.Subject() != "" {
		n++
	}
	if !e.Time().IsZero() {
		n++
	}
	if e.DataSchema() != "" {
		n++
	}
	if e.DataContentType() != "" {
		n++
	}
	m := &nats.Msg{Subject: subject, Header: make(nats.Header, n), Data: e.Data()}
	// One backing array for the header values: one allocation, not one
	// per attribute.
	vals := make([]string, 0, n)
	source := binaryHeader(m.Header, &vals, e)
	return m, source, nil
}

// binaryHeader puts the binary-mode headers of e into h, their values in
// *vals (appended to it: one backing array for all of them), and returns
// the event's source.
func binaryHeader(h nats.Header, vals *[]string, e event.Event) (source string) {
	binding.Attributes(e, true, func(name, value string) {
		if name == "source" {
			source = value
		}
		*vals = append(*vals, binding.EncodeHeaderValue(value))
		i := len(*vals) - 1
		h[headerName(name)] = (*vals)[i : i+1 : i+1]
	})
	return source
}

// headerName returns the header of attribute attr; those of the context
// attributes are constants, so that encoding does not build them for every
// event.
func headerName(attr string) string {
	switch attr {
	case "specversion":
		return HeaderPrefix + "specversion"
	case "id":
		return HeaderPrefix + "id"
	case "source":
		return HeaderPrefix + "source"
	case "type":
		return HeaderPrefix + "type"
	case "subject":
		return HeaderPrefix + "subject"
	case "time":
		return HeaderPrefix + "time"
	case "dataschema":
		return HeaderPrefix + "dataschema"
	case "datacontenttype":
		return HeaderPrefix + "datacontenttype"
	}
	return HeaderPrefix + attr
}

// errNotCloudEvent marks a message that carries no CloudEvent.
var errNotCloudEvent = fmt.Errorf("%w (no ce-specversion header, no structured content-type)", eventkit.ErrNotCloudEvent)

// DecodeMsg returns the CloudEvent carried by a NATS message (header and
// payload) in either mode. A message without any "ce-" header nor
// content-type whose payload is JSON is read as the JSON format: structured
// mode as version 1.0.2 of the NATS binding has it, which the CloudEvents
// Go SDK writes. The result passes eventkit.ValidateEvent. A
// message that is a CloudEvent in neither mode gets an error wrapping
// eventkit.ErrNotCloudEvent.
func DecodeMsg(h nats.Header, data []byte) (event.Event, error) {
	// One pass over the header: a structured content-type (in any case)
	// wins over the "ce-" headers whatever the order, so the first error of
	// an attribute is kept until the pass ends.
	e := event.New()
	sawVersion, sawAttr := false, false
	var attrErr error
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if len(k) <= len(HeaderPrefix) || !strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix) {
			if strings.EqualFold(k, HeaderContentType) && hasPrefixFold(vs[0], ceMediaPrefix) {
				return decodeStructured(vs[0], data)
			}
			continue
		}
		sawAttr = true
		if attrErr != nil {
			continue
		}
		name := strings.ToLower(k[len(HeaderPrefix):])
		if name == "specversion" && vs[0] == event.CloudEventsVersionV1 {
			// event.New made a 1.0 event already; setting it again would
			// copy the event's context.
			sawVersion = true
			continue
		}
		attrErr = setAttr(&e, name, vs[0])
		if name == "specversion" {
			sawVersion = true
		}
	}
	if attrErr != nil {
		return event.Event{}, attrErr
	}
	if !sawVersion {
		if !sawAttr && jsonvalid.Valid(data) {
			// Structured mode as version 1.0.2 of the binding has it (and
			// the Go SDK writes it): the JSON format as the payload, no
			// headers (NATS before 2.2 had none).
			e, err := eventkit.UnmarshalEvent(data)
			if err != nil {
				return event.Event{}, fmt.Errorf("%w; as the JSON format: %w", errNotCloudEvent, err)
			}
			return e, nil
		}
		return event.Event{}, errNotCloudEvent
	}
	if len(data) > 0 {
		e.DataEncoded = data
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// decodeStructured decodes a message whose content-type ct is a
// CloudEvents media type.
func decodeStructured(ct string, data []byte) (event.Event, error) {
	if hasPrefixFold(ct, eventkit.MediaTypeCloudEventsBatch) {
		return event.Event{}, errors.New("a CloudEvents batch cannot be delivered as one message")
	}
	return eventkit.UnmarshalEvent(data)
}

// setAttr sets attribute name (a header's, lower-cased) of e from the
// header's value v.
func setAttr(e *event.Event, name, v string) error {
	v, err := binding.DecodeHeaderValue(v)
	if err != nil {
		return &eventkit.ValidationError{Attribute: name, Reason: err.Error()}
	}
	if !binding.IsAttributeName(name) {
		return &eventkit.ValidationError{Attribute: name, Reason: "not a valid attribute name"}
	}
	return binding.Set(e, name, v)
}

// ceMediaPrefix starts the CloudEvents media types: a content-type with it
// marks structured mode.
const ceMediaPrefix = "application/cloudevents"

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
