package binding

import (
	"encoding/json"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// TestMarshalStructured: JSON data travels as the JSON value; data that is
// not JSON (another content type, or bytes that do not parse whatever the
// content type says) as data_base64; either way it decodes to the same
// bytes.
func TestMarshalStructured(t *testing.T) {
	for _, c := range []struct {
		ct, data string
		base64   bool
	}{
		{"application/json", `{"a":1}`, false},
		{"application/vnd.shop+json", `[1,2]`, false},
		{"application/json", `{"a":`, true},
		{"text/plain", `hello`, true},
		{"application/octet-stream", "\x00\xff", true},
	} {
		e := event.New()
		e.SetID("1")
		e.SetSource("urn:s")
		e.SetType("t")
		e.SetDataContentType(c.ct)
		e.DataEncoded = []byte(c.data)
		b, err := MarshalStructured(e)
		if err != nil {
			t.Fatalf("%s %q: %v", c.ct, c.data, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %q: %v\n%s", c.ct, c.data, err, b)
		}
		if _, ok := m["data_base64"]; ok != c.base64 {
			t.Errorf("%s %q: data_base64 present %v, want %v: %s", c.ct, c.data, ok, c.base64, b)
		}
		back, err := eventkit.UnmarshalEvent(b)
		if err != nil || string(back.Data()) != c.data {
			t.Errorf("%s %q: decoded data %q, %v", c.ct, c.data, back.Data(), err)
		}
	}
}
