// Package binding holds what every CloudEvents protocol binding in eventkit
// shares: the attributes of an event as (name, string) pairs in binary mode,
// setting an attribute back from its string form, the percent-encoding
// of header values that the HTTP and NATS bindings prescribe, and the
// event's JSON form in structured mode.
//
// Transports (nats, kafka, amqp, mqtt, redis, cehttp) add their own prefix
// ("ce-", "ce_", "cloudEvents_", none) and carry data and datacontenttype in
// their protocol's own way.
package binding

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/jsonvalid"
)

// MarshalStructured returns e in the JSON event format, as the structured
// mode of a binding carries it: data that is not a JSON value, whatever the
// content type claims, travels as data_base64, so that the receiver gets
// the same bytes back; JSON data travels as the value itself.
func MarshalStructured(e event.Event) ([]byte, error) {
	if d := e.Data(); len(d) > 0 {
		e.DataBase64 = !eventkit.IsJSONContentType(e.DataContentType()) || !jsonvalid.Valid(d)
	}
	return eventkit.MarshalEvent(e)
}

// Attributes calls fn with each context attribute of e that is set, in a
// stable order: specversion, id, source, type, subject, time, dataschema,
// datacontenttype, then the extensions by name. Values are in their
// canonical string form (time in RFC 3339 with nanoseconds, integers in
// decimal, binary in base64). datacontenttype is given only when
// withContentType is true (bindings that carry it in a protocol field of
// their own pass false).
func Attributes(e event.Event, withContentType bool, fn func(name, value string)) {
	fn("specversion", e.SpecVersion())
	fn("id", e.ID())
	fn("source", e.Source())
	fn("type", e.Type())
	if s := e.Subject(); s != "" {
		fn("subject", s)
	}
	if t := e.Time(); !t.IsZero() {
		fn("time", t.Format(time.RFC3339Nano))
	}
	if s := e.DataSchema(); s != "" {
		fn("dataschema", s)
	}
	if withContentType {
		if ct := e.DataContentType(); ct != "" {
			fn("datacontenttype", ct)
		}
	}
	ext := e.Extensions()
	if len(ext) == 0 {
		return
	}
	names := make([]string, 0, len(ext))
	for k := range ext {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fn(k, FormatValue(ext[k]))
	}
}

// FormatValue returns the canonical string form of an attribute value.
func FormatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano)
	}
	s, err := types.Format(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return s
}

// Set sets the attribute name of e from its string form. Unknown names
// become string extensions. It returns a *eventkit.ValidationError for a
// value that is not valid for the attribute.
func Set(e *event.Event, name, value string) error {
	bad := func(reason string) error { return &eventkit.ValidationError{Attribute: name, Reason: reason} }
	switch name {
	case "specversion":
		if value != event.CloudEventsVersionV1 {
			return bad("unsupported version \"" + value + "\" (want \"1.0\")")
		}
		e.SetSpecVersion(value)
	case "id":
		e.SetID(value)
	case "source":
		u, err := parseSource(value)
		if err != nil {
			return bad("must be a URI-reference: " + err.Error())
		}
		if ec, ok := e.Context.(*event.EventContextV1); ok {
			ec.Source = types.URIRef{URL: u}
		} else {
			e.SetSource(value)
		}
	case "type":
		e.SetType(value)
	case "subject":
		e.SetSubject(value)
	case "time":
		t, err := eventkit.ParseTime(value)
		if err != nil {
			return bad(err.Error())
		}
		e.SetTime(t)
	case "dataschema":
		e.SetDataSchema(value)
	case "datacontenttype":
		e.SetDataContentType(value)
	default:
		e.SetExtension(name, value)
		if err, ok := e.FieldErrors["extension:"+name]; ok {
			return bad(err.Error())
		}
	}
	return nil
}

// IsAttributeName reports whether s can name a CloudEvents attribute:
// lower-case ASCII letters and digits.
func IsAttributeName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// EncodeHeaderValue percent-encodes an attribute value for a header, as the
// HTTP binding prescribes: printable ASCII other than space, '"' and '%'
// stays as it is; every other byte of the value's UTF-8 form becomes %XX.
func EncodeHeaderValue(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// DecodeHeaderValue decodes a header value the way the HTTP binding
// prescribes: a value in double quotes is unquoted first, then
// percent-encoded octets are decoded once; the result must be valid UTF-8
// (an overlong form such as %C0%A0 is rejected).
func DecodeHeaderValue(s string) (string, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var b strings.Builder
		in := s[1 : len(s)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) {
				i++
			}
			b.WriteByte(in[i])
		}
		s = b.String()
	}
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("header value is not valid UTF-8")
		}
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("header value has a malformed percent-encoding at byte %d", i)
		}
		out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	if !utf8.Valid(out) {
		return "", fmt.Errorf("percent-decoded header value is not valid UTF-8")
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// parsedSource is a source attribute and its parsed form.
type parsedSource struct {
	s string
	u url.URL
}

// lastSource holds the last source parsed: the messages of a stream mostly
// come from a few sources, and parsing the URI is a sixth of decoding a
// binary-mode message. Entries are never changed after they are stored.
var lastSource atomic.Pointer[parsedSource]

// parseSource is url.Parse for source attributes, remembering the last one.
func parseSource(s string) (url.URL, error) {
	if p := lastSource.Load(); p != nil && p.s == s {
		return p.u, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, err
	}
	lastSource.Store(&parsedSource{s: s, u: *u})
	return *u, nil
}
