package mqtt

import (
	"fmt"
	"mime"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/internal/jsonvalid"
)

// StructuredContentType is the Content Type of a message in structured mode.
const StructuredContentType = "application/cloudevents+json"

func encode(e event.Event, structured bool) (*paho.PublishProperties, []byte, error) {
	if structured {
		b, err := binding.MarshalStructured(e)
		if err != nil {
			return nil, nil, err
		}
		return &paho.PublishProperties{ContentType: StructuredContentType}, b, nil
	}
	props := &paho.PublishProperties{ContentType: e.DataContentType()}
	props.User = make(paho.UserProperties, 0, 6+len(e.Extensions()))
	binding.Attributes(e, false, func(k, v string) {
		props.User = append(props.User, paho.UserProperty{Key: k, Value: v})
	})
	return props, e.Data(), nil
}

// sdkPrefix starts the user properties of the CloudEvents Go SDK's MQTT
// binding (mqtt_paho), which names each attribute "ce-" + name where the
// MQTT binding names it after the attribute alone.
const sdkPrefix = "ce-"

// unprefixed returns the user properties named sdkPrefix + attribute, as
// the attributes they carry; the others belong to other applications.
func unprefixed(user paho.UserProperties) paho.UserProperties {
	out := make(paho.UserProperties, 0, len(user))
	for _, u := range user {
		if len(u.Key) > len(sdkPrefix) && u.Key[:len(sdkPrefix)] == sdkPrefix {
			out = append(out, paho.UserProperty{Key: u.Key[len(sdkPrefix):], Value: u.Value})
		}
	}
	return out
}

func decode(p *paho.Publish) (event.Event, error) {
	var ct string
	var user paho.UserProperties
	if p.Properties != nil {
		ct, user = p.Properties.ContentType, p.Properties.User
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == StructuredContentType {
		return eventkit.UnmarshalEvent(p.Payload)
	}
	if user.Get("specversion") == "" && user.Get(sdkPrefix+"specversion") != "" {
		user = unprefixed(user)
	}
	if user.Get("specversion") == "" {
		// Without user properties the payload may still be a structured
		// event from an MQTT 3.1.1 publisher.
		if len(user) == 0 && ct == "" && jsonvalid.Valid(p.Payload) {
			return eventkit.UnmarshalEvent(p.Payload)
		}
		return event.Event{}, fmt.Errorf("mqtt: message has no specversion user property: %w", eventkit.ErrNotCloudEvent)
	}
	e := event.New()
	userCT := ""
	for _, u := range user {
		if !binding.IsAttributeName(u.Key) {
			continue // not an attribute: another application's property
		}
		if u.Key == "data" {
			return event.Event{}, &eventkit.ValidationError{Attribute: u.Key, Reason: "must not be a user property (the data is the payload)"}
		}
		if !utf8.ValidString(u.Value) {
			return event.Event{}, &eventkit.ValidationError{Attribute: u.Key, Reason: "value is not valid UTF-8"}
		}
		if u.Key == "datacontenttype" {
			// The binding's own example repeats the Content Type property
			// in a user property. Content Type wins (section 3.1.1: it
			// "MUST be mapped directly" to datacontenttype); the user
			// property stands in only when Content Type is absent.
			userCT = u.Value
			continue
		}
		if u.Key == "specversion" && u.Value == event.CloudEventsVersionV1 {
			continue
		}
		if err := binding.Set(&e, u.Key, u.Value); err != nil {
			return event.Event{}, err
		}
	}
	if ct == "" {
		ct = userCT
	}
	if ct != "" {
		e.SetDataContentType(ct)
	}
	if len(p.Payload) > 0 {
		e.DataEncoded = p.Payload
	}
	if err := eventkit.ValidateEvent(e); err != nil {
		return event.Event{}, err
	}
	return e, nil
}
