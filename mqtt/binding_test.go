package mqtt

import (
	"errors"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
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
		if err := eventkit.ValidateEvent(e); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		for _, structured := range []bool{false, true} {
			props, body, err := encode(e, structured)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			e2, err := decode(&paho.Publish{Payload: body, Properties: props})
			if err != nil {
				t.Fatalf("re-decode (structured=%v): %v", structured, err)
			}
			if d := eventkittest.DiffEvents(e, e2); d != "" {
				t.Fatalf("round trip (structured=%v): %s", structured, d)
			}
		}
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
