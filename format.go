package eventkit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/eventkit/eventkit/internal/jsonvalid"

	"github.com/eventkit/eventkit/internal/jsonstr"
)

// MediaTypeCloudEvents is the media type of an event in the JSON format.
const MediaTypeCloudEvents = "application/cloudevents+json"

// MediaTypeCloudEventsBatch is the media type of a JSON-format batch.
const MediaTypeCloudEventsBatch = "application/cloudevents-batch+json"

// UnmarshalEvent decodes one event in the CloudEvents JSON format, strictly:
// required attributes must be non-empty strings, optional ones strings or
// null, time an RFC 3339 timestamp with seconds and a valid offset,
// extension names lower-case alphanumerics with string, boolean or integer
// values, and data and data_base64 not both present. The result passes
// ValidateEvent. Errors are *ValidationError naming the attribute, or a
// syntax error.
func UnmarshalEvent(b []byte) (event.Event, error) {
	if err := checkJSON(b, "CloudEvent"); err != nil {
		return event.Event{}, err
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return event.Event{}, errors.New("invalid CloudEvent JSON: not an object")
	}
	return decodeObject(b[i:skipValue(b, i)])
}

// UnmarshalBatch decodes a batch in the CloudEvents JSON batch format (an
// array of events). Every element must be a valid event; the first invalid
// one fails the whole batch, with its index in the error.
func UnmarshalBatch(b []byte) ([]event.Event, error) {
	if err := checkJSON(b, "CloudEvents batch"); err != nil {
		return nil, err
	}
	i := skipSpace(b, 0)
	if b[i] != '[' {
		return nil, errors.New("invalid CloudEvents batch: not an array")
	}
	out := make([]event.Event, 0, bytes.Count(b, []byte(`"specversion"`)))
	i = skipSpace(b, i+1)
	for n := 0; b[i] != ']'; n++ {
		end := skipValue(b, i)
		if b[i] != '{' {
			return nil, fmt.Errorf("invalid CloudEvents batch: element %d is not an object", n)
		}
		e, err := decodeObject(b[i:end])
		if err != nil {
			return nil, &indexedError{i: n, err: err}
		}
		out = append(out, e)
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out, nil
}

// checkJSON rejects input that is not exactly one JSON value.
func checkJSON(b []byte, what string) error {
	if jsonvalid.Valid(b) {
		return nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		err = errors.New("not a single JSON value")
	}
	return fmt.Errorf("invalid %s JSON: %w", what, err)
}

// The scanner below runs only on input that jsonvalid.Valid accepted, so it
// only has to find where values end.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(b) && !strings.ContainsRune(" \t\n\r,]}", rune(b[i])) {
			i++
		}
		return i
	}
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// member is one name/value pair of a JSON object.
type member struct {
	name string
	raw  []byte
}

// decodeObject decodes one valid JSON object holding an event.
func decodeObject(b []byte) (event.Event, error) {
	var arr [16]member
	ms := members(arr[:0])
	i := skipSpace(b, 1)
	for b[i] != '}' {
		end := skipString(b, i)
		name, err := jsonString(b[i:end])
		if err != nil {
			return event.Event{}, err
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // ':'
		vend := skipValue(b, i)
		ms = append(ms, member{name: name, raw: b[i:vend]})
		i = skipSpace(b, vend)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return eventFromMembers(ms)
}

// jsonString decodes a JSON string literal, without allocating more than
// the result when it holds no escapes.
func jsonString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		in := raw[1 : len(raw)-1]
		if s, ok := commonString(in); ok {
			return s, nil
		}
		if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			return string(in), nil
		}
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// commonString returns the strings that nearly every event spells (the
// attribute names, the spec version, the usual content type) without
// allocating a copy.
func commonString(in []byte) (string, bool) {
	switch string(in) { // compared in place: no allocation
	case "specversion":
		return "specversion", true
	case "id":
		return "id", true
	case "source":
		return "source", true
	case "type":
		return "type", true
	case "datacontenttype":
		return "datacontenttype", true
	case "dataschema":
		return "dataschema", true
	case "subject":
		return "subject", true
	case "time":
		return "time", true
	case "data":
		return "data", true
	case "data_base64":
		return "data_base64", true
	case "1.0":
		return "1.0", true
	case "application/json":
		return "application/json", true
	}
	return "", false
}

// eventFromMembers makes the event of a decoded JSON object, checking each
// attribute as the CloudEvents JSON format requires.
func eventFromMembers(ms members) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	ec := e.Context.(*event.EventContextV1)
	if err := ms.required(ec); err != nil {
		return e, err
	}
	ct, hasCT, err := ms.optional(ec)
	if err != nil {
		return e, err
	}
	if err := ms.data(&e, ct, hasCT); err != nil {
		return e, err
	}
	return e, ms.extensions(ec)
}

// members are the name/value pairs of an event's JSON object.
type members []member

// get returns the value of the member name, and whether it is there and
// not null. The last of duplicate names wins, as in encoding/json.
func (ms members) get(name string) ([]byte, bool) {
	var v []byte
	ok := false
	for _, m := range ms {
		if m.name == name {
			v, ok = m.raw, true
		}
	}
	if ok && string(v) == "null" {
		return nil, false
	}
	return v, ok
}

// str returns the string attribute name, and whether it is there: a JSON
// string that is not blank.
func (ms members) str(name string, required bool) (string, bool, error) {
	v, ok := ms.get(name)
	if !ok {
		if required {
			return "", false, &ValidationError{Attribute: name, Reason: "required"}
		}
		return "", false, nil
	}
	if v[0] != '"' {
		return "", false, &ValidationError{Attribute: name, Reason: "must be a JSON string, got " + string(v)}
	}
	s, err := jsonString(v)
	if err != nil {
		return "", false, &ValidationError{Attribute: name, Reason: err.Error()}
	}
	if blank(s) {
		return "", false, &ValidationError{Attribute: name, Reason: "must not be empty or blank"}
	}
	return s, true, nil
}

// required reads the required attributes: specversion, id, source, type.
func (ms members) required(ec *event.EventContextV1) error {
	sv, _, err := ms.str("specversion", true)
	if err != nil {
		return err
	}
	if sv != event.CloudEventsVersionV1 {
		return &ValidationError{Attribute: "specversion", Reason: "unsupported version " + quote(sv) + " (want \"1.0\")"}
	}
	if ec.ID, _, err = ms.str("id", true); err != nil {
		return err
	}
	src, _, err := ms.str("source", true)
	if err != nil {
		return err
	}
	u, perr := url.Parse(src)
	if perr != nil {
		return &ValidationError{Attribute: "source", Reason: "must be a URI-reference: " + perr.Error()}
	}
	ec.Source = types.URIRef{URL: *u}
	ec.Type, _, err = ms.str("type", true)
	return err
}

// optional reads the optional attributes (subject, time, datacontenttype,
// dataschema), and returns the content type and whether there is one.
func (ms members) optional(ec *event.EventContextV1) (string, bool, error) {
	if s, ok, err := ms.str("subject", false); err != nil {
		return "", false, err
	} else if ok {
		ec.Subject = &s
	}
	if s, ok, err := ms.str("time", false); err != nil {
		return "", false, err
	} else if ok {
		t, err := ParseTime(s)
		if err != nil {
			return "", false, &ValidationError{Attribute: "time", Reason: err.Error()}
		}
		ec.Time = &types.Timestamp{Time: t}
	}
	ct, hasCT, err := ms.str("datacontenttype", false)
	if err != nil {
		return "", false, err
	}
	if hasCT {
		if r := checkMediaType(ct); r != "" {
			return "", false, &ValidationError{Attribute: "datacontenttype", Reason: r}
		}
		ec.DataContentType = &ct
	}
	if s, ok, err := ms.str("dataschema", false); err != nil {
		return "", false, err
	} else if ok {
		u, perr := url.Parse(s)
		if perr != nil || !u.IsAbs() {
			return "", false, &ValidationError{Attribute: "dataschema", Reason: "must be an absolute URI, got " + quote(s)}
		}
		ec.DataSchema = &types.URI{URL: *u}
	}
	return ct, hasCT, nil
}

// data sets e's data from data or data_base64: JSON data (by its content
// type ct, JSON without one) as sent, a JSON string of another type as its
// text.
func (ms members) data(e *event.Event, ct string, hasCT bool) error {
	data, hasData := ms.get("data")
	b64, hasB64 := ms.get("data_base64")
	switch {
	case hasData && hasB64:
		return &ValidationError{Attribute: "data_base64", Reason: "data and data_base64 must not both be present"}
	case hasB64:
		if b64[0] != '"' {
			return &ValidationError{Attribute: "data_base64", Reason: "must be a JSON string"}
		}
		s, err := jsonString(b64)
		if err != nil {
			return &ValidationError{Attribute: "data_base64", Reason: err.Error()}
		}
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return &ValidationError{Attribute: "data_base64", Reason: "invalid base64: " + err.Error()}
		}
		e.DataEncoded = dec
		e.DataBase64 = true
	case hasData:
		if (!hasCT || IsJSONContentType(ct)) || data[0] != '"' {
			e.DataEncoded = bytes.Clone(data) // JSON data kept as sent
		} else {
			s, err := jsonString(data)
			if err != nil {
				return &ValidationError{Attribute: "data", Reason: err.Error()}
			}
			e.DataEncoded = []byte(s)
		}
	}
	return nil
}

// extensions reads every member that is not a context attribute nor data
// as an extension; a null one is absent.
func (ms members) extensions(ec *event.EventContextV1) error {
	for _, m := range ms {
		if reservedNames[m.name] {
			continue
		}
		if r := checkExtensionName(m.name); r != "" {
			return &ValidationError{Attribute: m.name, Reason: r}
		}
		val, err := extensionValue(m.raw)
		if err != nil {
			return &ValidationError{Attribute: m.name, Reason: err.Error()}
		}
		if val == nil {
			delete(ec.Extensions, m.name)
			continue
		}
		if ec.Extensions == nil {
			ec.Extensions = make(map[string]any, 4)
		}
		ec.Extensions[m.name] = val
	}
	return nil
}

func extensionValue(v []byte) (any, error) {
	switch {
	case string(v) == "null":
		return nil, nil
	case string(v) == "true":
		return true, nil
	case string(v) == "false":
		return false, nil
	case v[0] == '"':
		return jsonString(v)
	case v[0] == '{' || v[0] == '[':
		return nil, errors.New("extension values must be strings, booleans or integers, not objects or arrays")
	default:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, err
		}
		if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			return nil, fmt.Errorf("integer extension values must be whole numbers in the 32-bit range, got %s", v)
		}
		return int32(f), nil
	}
}

// MarshalEvent encodes e in the CloudEvents JSON format. JSON data (by the
// rules of IsJSONContentType) is written as a JSON value under "data", and
// UnmarshalEvent gives back that value: whitespace before or after it, which
// JSON does not count as part of a value, is not kept (a binary-mode body of
// "{\"a\":1}\n" comes back as "{\"a\":1}"). Other data is written as a string
// under "data" when it is valid UTF-8 text and was not marked binary, and as
// base64 under "data_base64" otherwise, so that UnmarshalEvent gives back
// the same bytes.
func MarshalEvent(e event.Event) ([]byte, error) {
	return appendEvent(make([]byte, 0, 256+len(e.DataEncoded)), e)
}

// MarshalBatch encodes events in the CloudEvents JSON batch format.
func MarshalBatch(events []event.Event) ([]byte, error) {
	b := make([]byte, 0, 64+len(events)*320)
	b = append(b, '[')
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendEvent(b, events[i]); err != nil {
			return nil, &indexedError{i: i, err: err}
		}
	}
	return append(b, ']'), nil
}

func appendEvent(b []byte, e event.Event) ([]byte, error) {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		return nil, &ValidationError{Attribute: "specversion", Reason: "only CloudEvents 1.0 events can be encoded"}
	}
	b = append(b, `{"specversion":"1.0","id":`...)
	b = jsonstr.Append(b, ec.ID)
	b = append(b, `,"source":`...)
	b = jsonstr.Append(b, ec.Source.String())
	b = append(b, `,"type":`...)
	b = jsonstr.Append(b, ec.Type)
	if ec.Subject != nil {
		b = append(b, `,"subject":`...)
		b = jsonstr.Append(b, *ec.Subject)
	}
	if ec.Time != nil {
		b = append(b, `,"time":"`...)
		b = ec.Time.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if ec.DataSchema != nil {
		b = append(b, `,"dataschema":`...)
		b = jsonstr.Append(b, ec.DataSchema.String())
	}
	ct := ""
	if ec.DataContentType != nil {
		ct = *ec.DataContentType
		b = append(b, `,"datacontenttype":`...)
		b = jsonstr.Append(b, ct)
	}
	names := make([]string, 0, len(ec.Extensions))
	for name := range ec.Extensions {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic output
	for _, name := range names {
		v := ec.Extensions[name]
		b = append(b, ',')
		b = jsonstr.Append(b, name)
		b = append(b, ':')
		switch x := v.(type) {
		case bool:
			b = strconv.AppendBool(b, x)
		case int32:
			b = strconv.AppendInt(b, int64(x), 10)
		case int:
			b = strconv.AppendInt(b, int64(x), 10)
		case int64:
			b = strconv.AppendInt(b, x, 10)
		case string:
			b = jsonstr.Append(b, x)
		default:
			s, err := types.Format(v)
			if err != nil {
				return nil, &ValidationError{Attribute: name, Reason: err.Error()}
			}
			b = jsonstr.Append(b, s)
		}
	}
	if data := e.DataEncoded; data != nil {
		switch {
		case IsJSONContentType(ct) && !e.DataBase64 && jsonvalid.Valid(data):
			b = append(b, `,"data":`...)
			b = append(b, data...)
		case !e.DataBase64 && !IsJSONContentType(ct) && utf8.Valid(data):
			b = append(b, `,"data":`...)
			b = jsonstr.Append(b, string(data))
		default:
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, data)
			b = append(b, '"')
		}
	}
	return append(b, '}'), nil
}

// ParseTime parses a CloudEvents timestamp (RFC 3339: seconds required, an
// offset of "Z" or ±hh:mm within ±23:59).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 timestamp, got %q", s)
	}
	return t, nil
}

// IsJSONContentType reports whether a datacontenttype denotes JSON:
// "application/json", "text/json", or any "+json" structured suffix, with or
// without parameters. The empty content type counts as JSON (the JSON
// format's default).
func IsJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	_, sub, ok := strings.Cut(ct, "/")
	if !ok {
		return false
	}
	return strings.EqualFold(sub, "json") || len(sub) >= 5 && strings.EqualFold(sub[len(sub)-5:], "+json")
}
