package mqtt

import (
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/testkit"
)

// FuzzDecode: arbitrary user properties, content type and payload never
// panic; what decodes is a valid event that round-trips in both modes.
func FuzzDecode(f *testing.F) {
	f.Add("specversion", "1.0", "id", "x", "source", "/s", "type", "t", "text/plain", []byte("hi"))
	f.Add("specversion", "1.0", "time", "bad", "x", "y", "z", "w", "", []byte(nil))
	f.Add("specversion", "1.0", "id", "x", "source", "/s", "datacontenttype", "text/plain", "application/json", []byte(`{}`))
	f.Add("a", "b", "c", "d", "e", "f", "g", "h", "", []byte(`{"specversion":"1.0","id":"1","source":"/","type":"t"}`))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, k4, v4, ct string, payload []byte) {
		p := &paho.Publish{Payload: payload, Properties: &paho.PublishProperties{ContentType: ct, User: paho.UserProperties{
			{Key: k1, Value: v1}, {Key: k2, Value: v2}, {Key: k3, Value: v3}, {Key: k4, Value: v4}}}}
		e, err := decode(p)
		if err != nil {
			return
		}
		testkit.RoundTrip(t, e, func(e event.Event, structured bool) (*paho.Publish, error) {
			props, body, err := encode(e, structured)
			return &paho.Publish{Payload: body, Properties: props}, err
		}, decode)
	})
}

// TestDecodeNotCloudEvent checks that a message without specversion is
// refused with an error wrapping eventkit.ErrNotCloudEvent.
func TestDecodeNotCloudEvent(t *testing.T) {
	_, err := decode(&paho.Publish{Topic: "x", Payload: []byte("hi"), Properties: &paho.PublishProperties{ContentType: "text/plain"}})
	if !errors.Is(err, eventkit.ErrNotCloudEvent) {
		t.Fatalf("decode of a plain message: %v, want ErrNotCloudEvent", err)
	}
}
