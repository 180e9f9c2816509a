package binding

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// The remembered source must never stand in for another value, valid or
// not, and must be safe under concurrent decoding.
func TestSetSourceRemembersOnlyTheSame(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				for _, src := range []string{"urn:a", "https://example.com/b?x=1", "urn:a", "/relative/c"} {
					e := event.New()
					if err := Set(&e, "source", src); err != nil {
						t.Errorf("Set(source, %q): %v", src, err)
						return
					}
					if got := e.Source(); got != src {
						t.Errorf("source %q, want %q", got, src)
						return
					}
				}
				e := event.New()
				_ = Set(&e, "source", "urn:a")
				if err := Set(&e, "source", "http://[::1"); err == nil {
					t.Error("an invalid source was accepted after a valid one was remembered")
					return
				}
			}
		})
	}
	wg.Wait()
}

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
