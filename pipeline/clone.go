package pipeline

import (
	"maps"

	"github.com/cloudevents/sdk-go/v2/event"
)

// CloneEvent returns a copy of e that shares nothing e's holder can change
// in place: the attributes (the extensions map included) and the data are
// copied. A stage function that changes the attributes of the event it is
// given works on a copy, since the event may be its source message's. A
// CloudEvents 1.0 context is copied in one allocation (the attribute
// values it points to, a time or a URI, are replaced, never changed, by
// the event's setters); event.Event.Clone, which other versions get, makes
// several.
func CloneEvent(e event.Event) event.Event {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		return e.Clone()
	}
	c := new(event.EventContextV1)
	*c = *ec
	if len(ec.Extensions) > 0 {
		c.Extensions = maps.Clone(ec.Extensions)
		for k, v := range c.Extensions {
			if b, ok := v.([]byte); ok {
				c.Extensions[k] = append([]byte(nil), b...)
			}
		}
	} else {
		c.Extensions = nil
	}
	out := event.Event{Context: c, DataBase64: e.DataBase64}
	if e.DataEncoded != nil {
		out.DataEncoded = append(make([]byte, 0, len(e.DataEncoded)), e.DataEncoded...)
	}
	if len(e.FieldErrors) > 0 {
		out.FieldErrors = maps.Clone(e.FieldErrors)
	}
	return out
}
