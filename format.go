package eventkit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
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
	var raw map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&raw); err != nil {
		return event.Event{}, fmt.Errorf("invalid CloudEvent JSON: %w", err)
	}
	if raw == nil {
		return event.Event{}, errors.New("invalid CloudEvent JSON: not an object")
	}
	if _, err := d.Token(); err == nil {
		return event.Event{}, errors.New("invalid CloudEvent JSON: data after the object")
	}
	return eventFromMap(raw)
}

// UnmarshalBatch decodes a batch in the CloudEvents JSON batch format (an
// array of events). Every element must be a valid event; the first invalid
// one fails the whole batch, with its index in the error.
func UnmarshalBatch(b []byte) ([]event.Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("invalid CloudEvents batch: %w", err)
	}
	if raws == nil && !bytes.Equal(bytes.TrimSpace(b), []byte("[]")) {
		return nil, errors.New("invalid CloudEvents batch: not an array")
	}
	out := make([]event.Event, 0, len(raws))
	for i, r := range raws {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r, &m); err != nil || m == nil {
			return nil, fmt.Errorf("invalid CloudEvents batch: element %d is not an object", i)
		}
		e, err := eventFromMap(m)
		if err != nil {
			return nil, &indexedError{i: i, err: err}
		}
		out = append(out, e)
	}
	return out, nil
}

// MarshalEvent encodes e in the CloudEvents JSON format.
func MarshalEvent(e event.Event) ([]byte, error) { return json.Marshal(e) }

// MarshalBatch encodes events in the CloudEvents JSON batch format.
func MarshalBatch(events []event.Event) ([]byte, error) {
	if events == nil {
		events = []event.Event{}
	}
	return json.Marshal(events)
}

func eventFromMap(raw map[string]json.RawMessage) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	str := func(name string, required bool) (string, bool, error) {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if required {
				return "", false, &ValidationError{Attribute: name, Reason: "required"}
			}
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false, &ValidationError{Attribute: name, Reason: "must be a JSON string, got " + string(v)}
		}
		if strings.TrimSpace(s) == "" {
			return "", false, &ValidationError{Attribute: name, Reason: "must not be empty or blank"}
		}
		return s, true, nil
	}
	sv, _, err := str("specversion", true)
	if err != nil {
		return e, err
	}
	if sv != event.CloudEventsVersionV1 {
		return e, &ValidationError{Attribute: "specversion", Reason: "unsupported version " + quote(sv) + " (want \"1.0\")"}
	}
	id, _, err := str("id", true)
	if err != nil {
		return e, err
	}
	e.SetID(id)
	src, _, err := str("source", true)
	if err != nil {
		return e, err
	}
	u, perr := url.Parse(src)
	if perr != nil {
		return e, &ValidationError{Attribute: "source", Reason: "must be a URI-reference: " + perr.Error()}
	}
	e.Context.(*event.EventContextV1).Source = types.URIRef{URL: *u}
	typ, _, err := str("type", true)
	if err != nil {
		return e, err
	}
	e.SetType(typ)
	if s, ok, err := str("subject", false); err != nil {
		return e, err
	} else if ok {
		e.SetSubject(s)
	}
	if s, ok, err := str("time", false); err != nil {
		return e, err
	} else if ok {
		t, err := ParseTime(s)
		if err != nil {
			return e, &ValidationError{Attribute: "time", Reason: err.Error()}
		}
		e.SetTime(t)
	}
	ct, hasCT, err := str("datacontenttype", false)
	if err != nil {
		return e, err
	}
	if hasCT {
		if r := checkMediaType(ct); r != "" {
			return e, &ValidationError{Attribute: "datacontenttype", Reason: r}
		}
		e.SetDataContentType(ct)
	}
	if s, ok, err := str("dataschema", false); err != nil {
		return e, err
	} else if ok {
		u, perr := url.Parse(s)
		if perr != nil || !u.IsAbs() {
			return e, &ValidationError{Attribute: "dataschema", Reason: "must be an absolute URI, got " + quote(s)}
		}
		e.SetDataSchema(s)
	}
	data, hasData := raw["data"]
	if hasData && string(data) == "null" {
		hasData = false
	}
	b64, hasB64 := raw["data_base64"]
	if hasB64 && string(b64) == "null" {
		hasB64 = false
	}
	switch {
	case hasData && hasB64:
		return e, &ValidationError{Attribute: "data_base64", Reason: "data and data_base64 must not both be present"}
	case hasB64:
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return e, &ValidationError{Attribute: "data_base64", Reason: "must be a JSON string"}
		}
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return e, &ValidationError{Attribute: "data_base64", Reason: "invalid base64: " + err.Error()}
		}
		e.DataEncoded = dec
		e.DataBase64 = true
	case hasData:
		if !hasCT || IsJSONContentType(ct) {
			e.DataEncoded = compactCopy(data)
		} else if data[0] == '"' {
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return e, &ValidationError{Attribute: "data", Reason: err.Error()}
			}
			e.DataEncoded = []byte(s)
		} else {
			e.DataEncoded = compactCopy(data)
		}
	}
	for name, v := range raw {
		if reservedNames[name] {
			continue
		}
		if r := checkExtensionName(name); r != "" {
			return e, &ValidationError{Attribute: name, Reason: r}
		}
		val, err := extensionValue(v)
		if err != nil {
			return e, &ValidationError{Attribute: name, Reason: err.Error()}
		}
		if val == nil {
			continue
		}
		e.SetExtension(name, val)
		if ferr, ok := e.FieldErrors["extension:"+name]; ok {
			return e, &ValidationError{Attribute: name, Reason: ferr.Error()}
		}
	}
	return e, nil
}

func compactCopy(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return append([]byte(nil), b...)
	}
	return buf.Bytes()
}

func extensionValue(v json.RawMessage) (any, error) {
	s := strings.TrimSpace(string(v))
	switch {
	case s == "null":
		return nil, nil
	case s == "true":
		return true, nil
	case s == "false":
		return false, nil
	case strings.HasPrefix(s, `"`):
		var out string
		if err := json.Unmarshal(v, &out); err != nil {
			return nil, err
		}
		return out, nil
	case strings.HasPrefix(s, "{") || strings.HasPrefix(s, "["):
		return nil, errors.New("extension values must be strings, booleans or integers, not objects or arrays")
	default:
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, err
		}
		if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			return nil, fmt.Errorf("integer extension values must be whole numbers in the 32-bit range, got %s", s)
		}
		return int32(f), nil
	}
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
	ct = strings.ToLower(strings.TrimSpace(ct))
	_, sub, ok := strings.Cut(ct, "/")
	if !ok {
		return false
	}
	return sub == "json" || strings.HasSuffix(sub, "+json")
}
