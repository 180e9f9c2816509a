package eventkit_test

import (
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// TestValidateRefusesControlCharacters: the CloudEvents String type
// forbids U+0000–U+001F and U+007F–U+009F; bytes that are not UTF-8 are
// not a String either.
func TestValidateRefusesControlCharacters(t *testing.T) {
	for _, bad := range []string{"a\x00b", "a\r\nb", "a\x1b[2Jb", "a\x7fb", "a\u0085b", "a\xffb"} {
		for attr, set := range map[string]func(*event.Event){
			"id":      func(e *event.Event) { e.SetID(bad) },
			"type":    func(e *event.Event) { e.SetType(bad) },
			"subject": func(e *event.Event) { e.SetSubject(bad) },
			"ext":     func(e *event.Event) { e.SetExtension("ext", bad) },
		} {
			e := event.New()
			e.SetID("1")
			e.SetSource("/s")
			e.SetType("t")
			set(&e)
			var ve *eventkit.ValidationError
			if err := eventkit.ValidateEvent(e); !errors.As(err, &ve) || ve.Attribute != attr {
				t.Errorf("%s = %q: got %v", attr, bad, err)
			}
		}
	}
	e := event.New()
	e.SetSource("/s")
	e.SetType("t")
	e.SetID("ok é € 😀")
	if err := eventkit.ValidateEvent(e); err != nil {
		t.Errorf("printable Unicode refused: %v", err)
	}
}

// TestValidateMediaTypes: datacontenttype is an RFC 2046 media type,
// type/subtype (tokens) with optional parameters; the short path for a
// bare type/subtype accepts exactly what the full parse accepts.
func TestValidateMediaTypes(t *testing.T) {
	for ct, ok := range map[string]bool{
		"application/json": true, "text/plain; charset=utf-8": true, " application/json ": true,
		"application/cloudevents+json;charset=UTF-8": true, "a/b": true, "vnd.x-y/z.1+json": true,
		"json": false, "/json": false, "application/": false, "a/b/c": false,
		"application /json": false, "a/b;": true, "a/b; x": false, "a/b; x=\"unterminated": false,
		"text/plain\x00": false, "é/json": false, "a(b)/c": false,
	} {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType("t")
		e.SetDataContentType(ct)
		var ve *eventkit.ValidationError
		err := eventkit.ValidateEvent(e)
		if ok && err != nil || !ok && (!errors.As(err, &ve) || ve.Attribute != "datacontenttype") {
			t.Errorf("datacontenttype %q: got %v, want valid=%v", ct, err, ok)
		}
	}
}
