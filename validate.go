package eventkit

import (
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// ValidateEvent checks e against the CloudEvents 1.0 rules and returns a
// *ValidationError naming the first offending attribute, or nil. It is
// stricter than the SDK's event.Validate where the specification is: only
// specversion 1.0, extension names of lower-case letters and digits only,
// and datacontenttype as "type/subtype" (RFC 2046).
func ValidateEvent(e event.Event) error {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		if e.Context == nil {
			return &ValidationError{Attribute: "specversion", Reason: "missing (the event has no context)"}
		}
		return &ValidationError{Attribute: "specversion", Reason: "must be \"1.0\", got " + quote(e.SpecVersion())}
	}
	if blank(ec.ID) {
		return &ValidationError{Attribute: "id", Reason: "required, must be a non-empty string"}
	}
	if urlEmpty(&ec.Source.URL) {
		return &ValidationError{Attribute: "source", Reason: "required, must be a non-empty URI-reference"}
	}
	if blank(ec.Type) {
		return &ValidationError{Attribute: "type", Reason: "required, must be a non-empty string"}
	}
	if ec.DataContentType != nil {
		if err := checkMediaType(*ec.DataContentType); err != "" {
			return &ValidationError{Attribute: "datacontenttype", Reason: err}
		}
	}
	if ec.DataSchema != nil && !ec.DataSchema.URL.IsAbs() {
		return &ValidationError{Attribute: "dataschema", Reason: "must be an absolute URI, got " + quote(ec.DataSchema.String())}
	}
	if ec.Subject != nil && blank(*ec.Subject) {
		return &ValidationError{Attribute: "subject", Reason: "if present, must be a non-empty string"}
	}
	if err := checkTexts(ec); err != nil {
		return err
	}
	for name, v := range ec.Extensions {
		if r := checkExtensionName(name); r != "" {
			return &ValidationError{Attribute: name, Reason: r}
		}
		if sv, ok := v.(string); ok {
			if r := badText(sv); r != "" {
				return &ValidationError{Attribute: name, Reason: r}
			}
		}
	}
	for name, err := range e.FieldErrors {
		return &ValidationError{Attribute: name, Reason: err.Error()}
	}
	return nil
}

// ValidateEvents validates each event and returns the first error, with the
// event's index.
func ValidateEvents(events []event.Event) error {
	for i := range events {
		if err := ValidateEvent(events[i]); err != nil {
			if len(events) > 1 {
				return &indexedError{i: i, err: err}
			}
			return err
		}
	}
	return nil
}

type indexedError struct {
	i   int
	err error
}

func (e *indexedError) Error() string { return "event " + itoa(e.i) + ": " + e.err.Error() }
func (e *indexedError) Unwrap() error { return e.err }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	return string(b[p:])
}

func quote(s string) string { return "\"" + s + "\"" }

// reservedNames are attribute names no extension may take.
var reservedNames = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

func checkExtensionName(name string) string {
	if name == "" {
		return "extension name must not be empty"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "extension names must consist of lower-case letters and digits only"
		}
	}
	if reservedNames[name] {
		return "is a reserved attribute name"
	}
	return ""
}

// checkMediaType accepts "type/subtype" with optional parameters.
func checkMediaType(s string) string {
	// The common case, two tokens and nothing else, in one pass.
	if i := strings.IndexByte(s, '/'); i > 0 && isToken(s[:i]) && isToken(s[i+1:]) {
		return ""
	}
	if strings.TrimSpace(s) == "" {
		return "if present, must be a non-empty RFC 2046 media type"
	}
	base, params, hasParams := strings.Cut(s, ";")
	t, sub, ok := strings.Cut(strings.TrimSpace(base), "/")
	if !ok || !isToken(t) || !isToken(sub) {
		return "must be an RFC 2046 media type (type/subtype), got " + quote(s)
	}
	if hasParams && strings.TrimSpace(params) != "" {
		if _, _, err := mime.ParseMediaType(s); err != nil {
			return "must be an RFC 2046 media type: " + err.Error()
		}
	}
	return ""
}

// tokenChars marks the bytes allowed in an RFC 2045 token.
var tokenChars = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// checkTexts checks the String attributes (and the parts of source) for
// characters the CloudEvents type system forbids.
func checkTexts(ec *event.EventContextV1) error {
	for _, a := range [...]struct{ name, v string }{
		{"id", ec.ID}, {"type", ec.Type},
		{"source", ec.Source.Host}, {"source", ec.Source.Path}, {"source", ec.Source.Opaque},
		{"source", ec.Source.RawQuery}, {"source", ec.Source.Fragment},
	} {
		if r := badText(a.v); r != "" {
			return &ValidationError{Attribute: a.name, Reason: r}
		}
	}
	if ec.Subject != nil {
		if r := badText(*ec.Subject); r != "" {
			return &ValidationError{Attribute: "subject", Reason: r}
		}
	}
	return nil
}

// badText says why s is not a CloudEvents String ("" when it is): the
// specification forbids the control characters U+0000–U+001F and
// U+007F–U+009F, and a String is Unicode, so bytes that are not UTF-8 are
// refused too.
func badText(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			continue
		}
		if c < 0x80 {
			return "must not contain control characters (U+" + hex4(rune(c)) + ")"
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "must be valid UTF-8"
		}
		if r <= 0x9f {
			return "must not contain control characters (U+" + hex4(r) + ")"
		}
		i += size - 1
	}
	return ""
}

func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15]})
}

// blank reports whether s is empty or only white space, without allocating.
func blank(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c != ' ' && c != '\t' && c != '\n' && c != '\r' && c < 0x80 {
		return false
	}
	return strings.TrimSpace(s) == ""
}

func urlEmpty(u *url.URL) bool {
	return u.Scheme == "" && u.Opaque == "" && u.User == nil && u.Host == "" && u.Path == "" &&
		u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}
