package amqp

import (
	"fmt"
	"math"
	"mime"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
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
		b, err := binding.MarshalStructured(e)
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

// SpecHeaderPrefix is the prefix of application properties that the
// CloudEvents AMQP binding names ("cloudEvents:" + attribute). Subscribers
// read it as well as HeaderPrefix; publishers write HeaderPrefix.
const SpecHeaderPrefix = "cloudEvents:"

// attributeName returns the attribute a header names, and whether the header
// names one (either prefix).
func attributeName(k string) (string, bool) {
	if name, ok := strings.CutPrefix(k, HeaderPrefix); ok {
		return name, true
	}
	return strings.CutPrefix(k, SpecHeaderPrefix)
}

// stringAttributes are the context attributes whose type is not an
// extension's free choice: String, URI, URI-reference (and specversion).
var stringAttributes = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "dataschema": true}

func decode(d *amqp.Delivery) (event.Event, error) {
	if mt, _, err := mime.ParseMediaType(d.ContentType); err == nil && mt == StructuredContentType {
		return eventkit.UnmarshalEvent(d.Body)
	}
	_, ok1 := d.Headers[HeaderPrefix+"specversion"]
	_, ok2 := d.Headers[SpecHeaderPrefix+"specversion"]
	if !ok1 && !ok2 {
		return event.Event{}, fmt.Errorf("amqp: message has no %sspecversion (or %sspecversion) header: %w", SpecHeaderPrefix, HeaderPrefix, eventkit.ErrNotCloudEvent)
	}
	e := event.New()
	if err := setAttributes(&e, d.Headers, d.ContentType); err != nil {
		return event.Event{}, err
	}
	if len(d.Body) > 0 {
		e.DataEncoded = d.Body
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// setAttributes sets e's attributes from the headers of a binary-mode
// message and its content-type property ct, which wins over a
// datacontenttype header (section 3.1.1). Both prefixes may name the same
// attribute: they must then agree. Headers are visited in sorted order so
// that the outcome does not depend on the map's order.
func setAttributes(e *event.Event, headers amqp.Table, ct string) error {
	keys := make([]string, 0, len(headers))
	for k := range headers {
		if _, ok := attributeName(k); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	seen := make(map[string]string, len(keys))
	headerCT := ""
	for _, k := range keys {
		name, _ := attributeName(k)
		raw := headers[k]
		if !binding.IsAttributeName(name) || name == "data" {
			return &eventkit.ValidationError{Attribute: name, Reason: fmt.Sprintf("not a valid attribute name in header %q", k)}
		}
		if raw == nil {
			continue // AMQP null: the attribute is absent
		}
		v, err := attributeValue(name, raw)
		if err != nil {
			return err
		}
		first, err := firstValue(seen, name, v)
		if err != nil {
			return err
		}
		if !first {
			continue // the same value under the other prefix
		}
		if name == "datacontenttype" {
			s, ok := v.(string)
			if !ok {
				return &eventkit.ValidationError{Attribute: name, Reason: fmt.Sprintf("must be a string, not %T", raw)}
			}
			headerCT = s
			continue
		}
		if err := setAttribute(e, name, v); err != nil {
			return err
		}
	}
	if ct == "" {
		ct = headerCT
	}
	if ct != "" {
		e.SetDataContentType(ct)
	}
	return nil
}

// firstValue records the value v of attribute name in seen, by its
// canonical string, and reports whether it is the first: a later one must
// be the same value (the same instant, for time), or it is an error.
func firstValue(seen map[string]string, name string, v any) (bool, error) {
	canonical := binding.FormatValue(v)
	if s, ok := v.(string); ok && name == "time" {
		if t, err := eventkit.ParseTime(s); err == nil {
			canonical = binding.FormatValue(t) // the same instant in either form
		}
	}
	if prev, ok := seen[name]; ok {
		if prev != canonical {
			return false, &eventkit.ValidationError{Attribute: name, Reason: fmt.Sprintf("given twice with different values (%q and %q)", prev, canonical)}
		}
		return false, nil
	}
	seen[name] = canonical
	return true, nil
}

// setAttribute sets the attribute name of e (not datacontenttype) to the
// header value v, as attributeValue returned it.
func setAttribute(e *event.Event, name string, v any) error {
	if s, ok := v.(string); ok {
		if name == "specversion" && s == event.CloudEventsVersionV1 {
			return nil
		}
		return binding.Set(e, name, s)
	}
	if name == "time" {
		e.SetTime(v.(time.Time))
		return nil
	}
	e.SetExtension(name, v)
	if err, ok := e.FieldErrors["extension:"+name]; ok {
		return &eventkit.ValidationError{Attribute: name, Reason: err.Error()}
	}
	return nil
}

// attributeValue maps a header value to the CloudEvents type system, as the
// AMQP binding's type mapping prescribes for receivers (section 3.1.3.2):
// the native AMQP form or the canonical string form of each attribute.
// The result is a string (to be parsed as the attribute's string form), a
// bool (Boolean), an int32 (Integer), a []byte (Binary) or a time.Time
// (Timestamp). As the binding allows, input is relaxed: any integer type
// in the Integer range, a float with an integral value, and for the String
// attributes a binary value that is valid UTF-8.
func attributeValue(name string, raw any) (any, error) {
	bad := func(reason string) error { return &eventkit.ValidationError{Attribute: name, Reason: reason} }
	var v any
	switch x := raw.(type) {
	case string:
		if !utf8.ValidString(x) {
			return nil, bad("value is not valid UTF-8")
		}
		return x, nil
	case []byte:
		if stringAttributes[name] || name == "time" {
			if !utf8.Valid(x) {
				return nil, bad("binary value is not valid UTF-8 text")
			}
			return string(x), nil
		}
		v = append([]byte(nil), x...)
	case bool:
		v = x
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		i, err := types.ToInteger(x)
		if err != nil {
			return nil, bad("integer out of the range of a CloudEvents Integer (32 bits)")
		}
		v = i
	case float32, float64:
		f, _ := types.ToInteger(x)
		if fv := reflect.ValueOf(x).Float(); fv != math.Trunc(fv) || fv > math.MaxInt32 || fv < math.MinInt32 {
			return nil, bad(fmt.Sprintf("floating-point value %v is not a CloudEvents Integer", fv))
		}
		v = f
	case time.Time:
		v = x.UTC()
	default:
		return nil, bad(fmt.Sprintf("a header of AMQP type %T has no CloudEvents type", raw))
	}
	switch {
	case name == "time":
		if t, ok := v.(time.Time); ok {
			return t, nil
		}
		return nil, bad(fmt.Sprintf("must be a timestamp or its string form, not %T", raw))
	case stringAttributes[name]:
		return nil, bad(fmt.Sprintf("must be a string, not %T", raw))
	}
	return v, nil
}
