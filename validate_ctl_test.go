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
