package amqp

import (
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/jsonvalid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// HeaderPrefix prefixes the header of each CloudEvents attribute in binary
// mode (the JMS-compatible form of the AMQP binding).
const HeaderPrefix = "cloudEvents_"

// StructuredContentType is the content type of a message in structured mode.
const StructuredContentType = "application/cloudevents+json"

var headerNames = map[string]string{}

func init() {
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "dataschema"} {
		headerNames[k] = HeaderPrefix + k
	}
}

func encode(e event.Event, structured bool) (amqp.Publishing, error) {
	p := amqp.Publishing{DeliveryMode: amqp.Persistent}
	if structured {
		if d := e.Data(); len(d) > 0 {
			e.DataBase64 = !eventkit.IsJSONContentType(e.DataContentType()) || !jsonvalid.Valid(d)
		}
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return p, err
		}
		p.ContentType, p.Body = StructuredContentType, b
		return p, nil
	}
	h := make(amqp.Table, 6+len(e.Extensions()))
	binding.Attributes(e, false, func(k, v string) {
		n, ok := headerNames[k]
		if !ok {
			n = HeaderPrefix + k
		}
		h[n] = v
	})
	p.Headers = h
	p.ContentType = e.DataContentType()
	p.Body = e.Data()
	return p, nil
}

func decode(d *amqp.Delivery) (event.Event, error) {
	if mt, _, err := mime.ParseMediaType(d.ContentType); err == nil && mt == StructuredContentType {
		return eventkit.UnmarshalEvent(d.Body)
	}
	e := event.New()
	if _, ok := d.Headers[HeaderPrefix+"specversion"]; !ok {
		return event.Event{}, fmt.Errorf("amqp: message has no %sspecversion header: not a CloudEvent", HeaderPrefix)
	}
	for k, raw := range d.Headers {
		name, ok := strings.CutPrefix(k, HeaderPrefix)
		if !ok {
			continue
		}
		var v string
		switch x := raw.(type) {
		case string:
			v = x
		case []byte:
			v = string(x)
		case time.Time:
			v = x.UTC().Format(time.RFC3339Nano)
		default:
			v = binding.FormatValue(x)
		}
		if !binding.IsAttributeName(name) || name == "datacontenttype" || name == "data" {
			return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: fmt.Sprintf("not a valid attribute name in header %q", k)}
		}
		if !utf8.ValidString(v) {
			return event.Event{}, &eventkit.ValidationError{Attribute: name, Reason: "value is not valid UTF-8"}
		}
		if name == "specversion" && v == event.CloudEventsVersionV1 {
			continue
		}
		if err := binding.Set(&e, name, v); err != nil {
			return event.Event{}, err
		}
	}
	if d.ContentType != "" {
		e.SetDataContentType(d.ContentType)
	}
	if len(d.Body) > 0 {
		e.DataEncoded = d.Body
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}
