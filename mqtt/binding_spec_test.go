package mqtt

import (
	"errors"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
)

// specExample is the binary-mode example of the CloudEvents MQTT binding
// (section 3.1.4): Content Type and a datacontenttype user property that
// repeats it.
func specExample(contentType, userCT string) *paho.Publish {
	user := paho.UserProperties{
		{Key: "specversion", Value: "1.0"},
		{Key: "type", Value: "com.example.someevent"},
		{Key: "time", Value: "2018-04-05T03:56:24Z"},
		{Key: "id", Value: "1234-1234-1234"},
		{Key: "source", Value: "/mycontext/subcontext"},
	}
	if userCT != "" {
		user = append(user, paho.UserProperty{Key: "datacontenttype", Value: userCT})
	}
	return &paho.Publish{Topic: "mytopic", Payload: []byte(`{"a":1}`),
		Properties: &paho.PublishProperties{ContentType: contentType, User: user}}
}

// TestDecodeSpecExample: the binding's own example decodes (it was refused
// with "datacontenttype: must not be a user property"), and encoding the
// event again gives the canonical form, without the user property.
func TestDecodeSpecExample(t *testing.T) {
	const ct = "application/json; charset=utf-8"
	e, err := decode(specExample(ct, ct))
	if err != nil {
		t.Fatalf("the MQTT binding's example is refused: %v", err)
	}
	if e.ID() != "1234-1234-1234" || e.Type() != "com.example.someevent" || e.DataContentType() != ct || string(e.Data()) != `{"a":1}` {
		t.Fatalf("decoded %v", e)
	}
	props, body, err := encode(e, false)
	if err != nil {
		t.Fatal(err)
	}
	if props.ContentType != ct || string(body) != `{"a":1}` {
		t.Fatalf("encoded Content Type %q, payload %q", props.ContentType, body)
	}
	if v := props.User.Get("datacontenttype"); v != "" {
		t.Fatalf("encoded a datacontenttype user property %q: output is not canonical", v)
	}
}

// TestDecodeContentTypePrecedence: the Content Type property is the
// datacontenttype whenever it is present; the user property is used only
// when Content Type is absent, and is ignored when it differs.
func TestDecodeContentTypePrecedence(t *testing.T) {
	for _, c := range []struct{ prop, user, want string }{
		{"application/json", "application/json", "application/json"},
		{"application/json", "text/plain", "application/json"},
		{"", "text/plain", "text/plain"},
		{"text/plain", "", "text/plain"},
		{"", "", ""},
	} {
		e, err := decode(specExample(c.prop, c.user))
		if err != nil {
			t.Errorf("Content Type %q, user property %q: %v", c.prop, c.user, err)
			continue
		}
		if got := e.DataContentType(); got != c.want {
			t.Errorf("Content Type %q, user property %q: datacontenttype %q, want %q", c.prop, c.user, got, c.want)
		}
	}
}

// TestDecodeDataUserProperty: the data is the payload; a "data" user
// property is still refused.
func TestDecodeDataUserProperty(t *testing.T) {
	p := specExample("text/plain", "")
	p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: "data", Value: "x"})
	_, err := decode(p)
	var ve *eventkit.ValidationError
	if !errors.As(err, &ve) || ve.Attribute != "data" {
		t.Fatalf("got %v, want a validation error on data", err)
	}
}
