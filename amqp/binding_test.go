package amqp

import (
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzDecode feeds arbitrary headers, content type and body to the
// decoder: no panic, and what it accepts is a valid event that survives
// encode and decode in both modes.
func FuzzDecode(f *testing.F) {
	f.Add("cloudEvents_specversion", "1.0", "cloudEvents_id", "x", "cloudEvents_source", "/s", "cloudEvents_type", "t", "text/plain", []byte("hi"))
	f.Add("cloudEvents_specversion", "1.0", "cloudEvents_time", "bad", "x", "y", "z", "w", "", []byte(nil))
	f.Add("cloudEvents:specversion", "1.0", "cloudEvents:id", "x", "cloudEvents:source", "/s", "cloudEvents_type", "t", "text/plain", []byte("hi"))
	f.Add("a", "b", "c", "d", "e", "f", "g", "h", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/","type":"t"}`))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, k4, v4, ct string, body []byte) {
		d := amqp.Delivery{Headers: amqp.Table{k1: v1, k2: v2, k3: v3, k4: v4}, ContentType: ct, Body: body}
		e, err := decode(&d)
		if err != nil {
			return
		}
		testkit.RoundTrip(t, e, func(e event.Event, structured bool) (*amqp.Delivery, error) {
			p, err := encode(e, structured)
			return &amqp.Delivery{Headers: p.Headers, ContentType: p.ContentType, Body: p.Body}, err
		}, decode)
	})
}

// TestDecodeNotCloudEvent checks that a message without specversion is
// refused with an error wrapping eventkit.ErrNotCloudEvent.
func TestDecodeNotCloudEvent(t *testing.T) {
	_, err := decode(&amqp.Delivery{Headers: amqp.Table{"x-app": "1"}, ContentType: "text/plain", Body: []byte("hi")})
	if !errors.Is(err, eventkit.ErrNotCloudEvent) {
		t.Fatalf("decode of a plain message: %v, want ErrNotCloudEvent", err)
	}
}
