package amqp

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

func baseHeaders(prefix string) amqp.Table {
	return amqp.Table{
		prefix + "specversion": "1.0",
		prefix + "id":          "1234-1234-1234",
		prefix + "source":      "/mycontext/subcontext",
		prefix + "type":        "com.example.someevent",
	}
}

// TestDecodeSpecPrefix: the binding's own prefix "cloudEvents:" is read as
// well as "cloudEvents_" (it was refused: "no cloudEvents_specversion
// header"); output keeps the canonical "cloudEvents_" form.
func TestDecodeSpecPrefix(t *testing.T) {
	h := baseHeaders(SpecHeaderPrefix)
	h["cloudEvents:time"] = "2018-04-05T03:56:24Z"
	h["cloudEvents:myext"] = "v"
	e, err := decode(&amqp.Delivery{Headers: h, ContentType: "application/json; charset=utf-8", Body: []byte(`{}`)})
	if err != nil {
		t.Fatalf("the AMQP binding's example is refused: %v", err)
	}
	if e.ID() != "1234-1234-1234" || e.Source() != "/mycontext/subcontext" || e.Time().IsZero() || e.Extensions()["myext"] != "v" {
		t.Fatalf("decoded %v", e)
	}
	p, err := encode(e, false)
	if err != nil {
		t.Fatal(err)
	}
	for k := range p.Headers {
		if k[:len(HeaderPrefix)] != HeaderPrefix {
			t.Errorf("encoded header %q: output must use the canonical %q prefix", k, HeaderPrefix)
		}
	}
}

// TestDecodeNativeTypes: application properties of native AMQP types are
// mapped to the CloudEvents types (section 3.1.3.2: receivers MUST accept
// them), and re-encoded as canonical strings.
func TestDecodeNativeTypes(t *testing.T) {
	ts := time.Date(2018, 4, 5, 3, 56, 24, 0, time.UTC)
	bin := []byte{0, 0xff, 0xfe, 'a'} // not UTF-8: was mangled into a string
	for _, prefix := range []string{HeaderPrefix, SpecHeaderPrefix} {
		h := baseHeaders(prefix)
		h[prefix+"time"] = ts
		h[prefix+"seq"] = int64(42)
		h[prefix+"small"] = int8(-3)
		h[prefix+"u16"] = uint16(65535)
		h[prefix+"flag"] = true
		h[prefix+"blob"] = bin
		h[prefix+"when"] = ts
		h[prefix+"whole"] = float64(7)
		h[prefix+"absent"] = nil
		e, err := decode(&amqp.Delivery{Headers: h})
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		ext := e.Extensions()
		if !e.Time().Equal(ts) {
			t.Errorf("prefix %q: time %v, want %v", prefix, e.Time(), ts)
		}
		for name, want := range map[string]any{"seq": int32(42), "small": int32(-3), "u16": int32(65535), "flag": true, "whole": int32(7)} {
			if ext[name] != want {
				t.Errorf("prefix %q: %s = %#v, want %#v", prefix, name, ext[name], want)
			}
		}
		if b, ok := ext["blob"].([]byte); !ok || !bytes.Equal(b, bin) {
			t.Errorf("prefix %q: blob = %#v, want Binary %v", prefix, ext["blob"], bin)
		}
		if w, ok := ext["when"].(types.Timestamp); !ok || !w.Time.Equal(ts) {
			t.Errorf("prefix %q: when = %#v, want Timestamp %v", prefix, ext["when"], ts)
		}
		if _, ok := ext["absent"]; ok {
			t.Errorf("prefix %q: a null header gave attribute absent = %#v", prefix, ext["absent"])
		}
		p, err := encode(e, false)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"seq": "42", "small": "-3", "flag": "true", "blob": "AP/+YQ==", "when": "2018-04-05T03:56:24Z", "time": "2018-04-05T03:56:24Z", "whole": "7"} {
			if got := p.Headers[HeaderPrefix+k]; got != want {
				t.Errorf("prefix %q: encoded %s = %#v, want canonical %q", prefix, k, got, want)
			}
		}
	}
}

// TestDecodeRejectsNativeMismatch: values that have no CloudEvents type, or
// the wrong type for a context attribute, are refused with a validation
// error naming the attribute.
func TestDecodeRejectsNativeMismatch(t *testing.T) {
	for name, c := range map[string]struct {
		attr string
		v    any
	}{
		"integer id":            {"id", int64(5)},
		"boolean source":        {"source", true},
		"integer time":          {"time", int32(5)},
		"out of range":          {"big", int64(math.MaxInt32) + 1},
		"fraction":              {"ratio", 1.5},
		"table":                 {"nested", amqp.Table{"a": "b"}},
		"array":                 {"list", []any{"a"}},
		"decimal":               {"dec", amqp.Decimal{Scale: 1, Value: 15}},
		"binary non-UTF-8 type": {"type", []byte{0xff}},
	} {
		h := baseHeaders(HeaderPrefix)
		h[HeaderPrefix+c.attr] = c.v
		_, err := decode(&amqp.Delivery{Headers: h})
		var ve *eventkit.ValidationError
		if !errors.As(err, &ve) || ve.Attribute != c.attr {
			t.Errorf("%s: got %v, want a validation error on %s", name, err, c.attr)
		}
	}
}

// TestDecodeBothPrefixes: an attribute given under both prefixes is
// accepted when the values agree (as the same instant for time) and
// refused when they differ.
func TestDecodeBothPrefixes(t *testing.T) {
	h := baseHeaders(HeaderPrefix)
	h[SpecHeaderPrefix+"id"] = "1234-1234-1234"
	h[SpecHeaderPrefix+"time"] = time.Date(2018, 4, 5, 3, 56, 24, 0, time.UTC)
	h[HeaderPrefix+"time"] = "2018-04-05T05:56:24+02:00"
	if _, err := decode(&amqp.Delivery{Headers: h}); err != nil {
		t.Fatalf("agreeing values: %v", err)
	}
	h[SpecHeaderPrefix+"id"] = "other"
	_, err := decode(&amqp.Delivery{Headers: h})
	var ve *eventkit.ValidationError
	if !errors.As(err, &ve) || ve.Attribute != "id" {
		t.Fatalf("differing values: got %v, want a validation error on id", err)
	}
}

// TestDecodeDataContentTypeHeader: a datacontenttype header (which the
// binding carries in the content-type property) is accepted; the property
// wins when both are present, and output carries the property only.
func TestDecodeDataContentTypeHeader(t *testing.T) {
	for _, c := range []struct{ prop, header, want string }{
		{"application/json", "application/json", "application/json"},
		{"application/json", "text/plain", "application/json"},
		{"", "text/plain", "text/plain"},
	} {
		h := baseHeaders(SpecHeaderPrefix)
		h[SpecHeaderPrefix+"datacontenttype"] = c.header
		e, err := decode(&amqp.Delivery{Headers: h, ContentType: c.prop, Body: []byte(`{}`)})
		if err != nil {
			t.Errorf("content-type %q, header %q: %v", c.prop, c.header, err)
			continue
		}
		if got := e.DataContentType(); got != c.want {
			t.Errorf("content-type %q, header %q: datacontenttype %q, want %q", c.prop, c.header, got, c.want)
		}
		p, err := encode(e, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Headers[HeaderPrefix+"datacontenttype"]; ok || p.ContentType != c.want {
			t.Errorf("encoded headers %v, content-type %q", p.Headers, p.ContentType)
		}
	}
}
