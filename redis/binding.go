package redis

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/jsonvalid"
)

// Field names of a stream entry.
const (
	// AttributePrefix prefixes the field of each CloudEvents attribute in
	// binary mode.
	AttributePrefix = "ce_"
	// FieldContentType holds the data content type (binary mode) or
	// application/cloudevents+json (structured mode).
	FieldContentType = "content-type"
	// FieldData holds the event data in binary mode.
	FieldData = "data"
	// FieldEvent holds the whole event in structured mode.
	FieldEvent = "event"
	// StructuredContentType marks an entry in structured mode.
	StructuredContentType = eventkit.StructuredContentType
)

var fieldNames = map[string]string{}

func init() {
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "dataschema"} {
		fieldNames[k] = AttributePrefix + k
	}
}

// encode returns the XADD field/value pairs of e.
func encode(e event.Event, structured bool) ([]any, error) {
	if structured {
		// Data that is not JSON travels as data_base64, whatever the
		// content type claims.
		if d := e.Data(); len(d) > 0 {
			e.DataBase64 = !eventkit.IsJSONContentType(e.DataContentType()) || !jsonvalid.Valid(d)
		}
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return nil, err
		}
		return []any{FieldContentType, StructuredContentType, FieldEvent, b}, nil
	}
	vals := make([]any, 0, 12+2*len(e.Extensions()))
	binding.Attributes(e, false, func(k, v string) {
		f, ok := fieldNames[k]
		if !ok {
			f = AttributePrefix + k
		}
		vals = append(vals, f, v)
	})
	if ct := e.DataContentType(); ct != "" {
		vals = append(vals, FieldContentType, ct)
	}
	if d := e.Data(); len(d) > 0 {
		vals = append(vals, FieldData, d)
	}
	return vals, nil
}

// decode returns the event held by the fields of a stream entry.
func decode(fields map[string]any) (event.Event, error) {
	str := func(k string) (string, bool) {
		v, ok := fields[k]
		if !ok {
			return "", false
		}
		switch x := v.(type) {
		case string:
			return x, true
		case []byte:
			return string(x), true
		}
		return fmt.Sprint(v), true
	}
	if ev, ok := str(FieldEvent); ok {
		if ct, _ := str(FieldContentType); ct != StructuredContentType {
			return event.Event{}, fmt.Errorf("redis: entry has an %q field but content-type %q: %w", FieldEvent, ct, eventkit.ErrNotCloudEvent)
		}
		return eventkit.UnmarshalEvent([]byte(ev))
	}
	e := event.New()
	if _, ok := fields[AttributePrefix+"specversion"]; !ok {
		return event.Event{}, fmt.Errorf("redis: entry has no %sspecversion field: %w", AttributePrefix, eventkit.ErrNotCloudEvent)
	}
	for k := range fields {
		v, _ := str(k)
		switch {
		case strings.HasPrefix(k, AttributePrefix):
			name := k[len(AttributePrefix):]
			if !binding.IsAttributeName(name) || name == "datacontenttype" || name == "data" {
				return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: "not a valid attribute name in field " + fmt.Sprintf("%q", k)}
			}
			if !utf8.ValidString(v) {
				return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: "value is not valid UTF-8"}
			}
			if name == "specversion" && v == event.CloudEventsVersionV1 {
				continue // event.New is already 1.0; SetSpecVersion costs
			}
			if err := binding.Set(&e, name, v); err != nil {
				return event.Event{}, err
			}
		case k == FieldContentType:
			e.SetDataContentType(v)
		case k == FieldData:
			e.DataEncoded = []byte(v)
		}
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}
