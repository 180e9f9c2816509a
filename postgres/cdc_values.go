package postgres

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit/cdc"
)

// PostgreSQL type OIDs that change data capture maps to JSON by type.
const (
	cdcOIDBool        = 16
	cdcOIDBytea       = 17
	cdcOIDInt8        = 20
	cdcOIDInt2        = 21
	cdcOIDInt4        = 23
	cdcOIDOID         = 26
	cdcOIDJSON        = 114
	cdcOIDFloat4      = 700
	cdcOIDFloat8      = 701
	cdcOIDTimestamp   = 1114
	cdcOIDTimestamptz = 1184
	cdcOIDNumeric     = 1700
	cdcOIDJSONB       = 3802
)

// cdcArrayElem maps the OIDs of array types to their element types.
var cdcArrayElem = map[uint32]uint32{
	1000: cdcOIDBool, 1001: cdcOIDBytea, 1005: cdcOIDInt2, 1007: cdcOIDInt4, 1016: cdcOIDInt8,
	1028: cdcOIDOID, 199: cdcOIDJSON, 3807: cdcOIDJSONB, 1021: cdcOIDFloat4, 1022: cdcOIDFloat8,
	1115: cdcOIDTimestamp, 1185: cdcOIDTimestamptz, 1231: cdcOIDNumeric,
	1009: 25, 1015: 1043, 1014: 1042, 1003: 19, 2951: 2950, 1182: 1082, 1183: 1083, 1270: 1266,
	1187: 1186, 1041: 869, 651: 650, 1040: 829,
}

// cdcAppendValue appends the JSON form of a column value given in
// PostgreSQL's text output (with DateStyle ISO, TimeZone UTC,
// extra_float_digits 3, bytea_output hex):
// integers and finite floats as JSON numbers, numeric as a string (exact),
// bool as a boolean, json and jsonb as JSON, timestamptz in RFC 3339 (UTC,
// "Z"), timestamp in ISO 8601 without zone, bytea in base64, arrays as JSON
// arrays of their elements, everything else (text, uuid, dates, enums, …)
// as a JSON string of its text.
func cdcAppendValue(b []byte, typ uint32, text string) []byte {
	switch typ {
	case cdcOIDInt2, cdcOIDInt4, cdcOIDInt8, cdcOIDOID:
		if cdcIsInteger(text) {
			return append(b, text...)
		}
	case cdcOIDFloat4, cdcOIDFloat8:
		if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "NnIi") {
			return append(b, text...)
		}
	case cdcOIDBool:
		switch text {
		case "t":
			return append(b, "true"...)
		case "f":
			return append(b, "false"...)
		}
	case cdcOIDJSON, cdcOIDJSONB:
		return append(b, text...)
	case cdcOIDTimestamptz:
		return cdc.AppendString(b, cdcTimestamptz(text))
	case cdcOIDTimestamp:
		return cdc.AppendString(b, cdcTimestamp(text))
	case cdcOIDBytea:
		if strings.HasPrefix(text, `\x`) {
			raw, err := hex.DecodeString(text[2:])
			if err == nil {
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, raw)
				return append(b, '"')
			}
		}
	default:
		if elem, ok := cdcArrayElem[typ]; ok {
			if out, ok := cdcAppendArray(b, elem, text); ok {
				return out
			}
		}
	}
	return cdc.AppendString(b, text)
}

func cdcIsInteger(s string) bool {
	if s == "" || s == "-" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-') {
			return false
		}
	}
	return true
}

// cdcTimestamptz turns "2024-01-02 03:04:05.123456+00" into
// "2024-01-02T03:04:05.123456Z"; other forms (infinity, BC dates, other
// offsets) keep their text with the 'T' separator when there is one.
func cdcTimestamptz(s string) string {
	t := cdcTimestamp(s)
	if strings.HasSuffix(t, "+00") {
		return t[:len(t)-3] + "Z"
	}
	if n := len(t); n > 19 && (t[n-3] == '+' || t[n-3] == '-') && cdcIsInteger(t[n-2:]) {
		return t + ":00" // "+05" → "+05:00"
	}
	return t
}

func cdcTimestamp(s string) string {
	if len(s) >= 19 && s[10] == ' ' && s[4] == '-' {
		return s[:10] + "T" + s[11:]
	}
	return s
}

// cdcAppendArray appends a PostgreSQL array literal ("{1,2,NULL}",
// "{{1,2},{3,4}}", `{"a b","c\"d"}`, "[0:1]={1,2}") as a JSON array whose
// elements are mapped by elem. It reports false for a malformed literal.
func cdcAppendArray(b []byte, elem uint32, s string) ([]byte, bool) {
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, '=')
		if i < 0 {
			return b, false
		}
		s = s[i+1:]
	}
	p := cdcArrayParser{s: s, elem: elem}
	out, ok := p.array(b)
	if !ok || p.i != len(p.s) {
		return b, false
	}
	return out, true
}

type cdcArrayParser struct {
	s    string
	i    int
	elem uint32
}

func (p *cdcArrayParser) array(b []byte) ([]byte, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return b, false
	}
	p.i++
	b = append(b, '[')
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return append(b, ']'), true
	}
	for first := true; ; first = false {
		if !first {
			b = append(b, ',')
		}
		if p.i >= len(p.s) {
			return b, false
		}
		var ok bool
		switch p.s[p.i] {
		case '{':
			b, ok = p.array(b)
		case '"':
			var v string
			v, ok = p.quoted()
			if ok {
				b = cdcAppendValue(b, p.elem, v)
			}
		default:
			j := p.i
			for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
				p.i++
			}
			v := p.s[j:p.i]
			ok = v != ""
			if v == "NULL" {
				b = append(b, "null"...)
			} else if ok {
				b = cdcAppendValue(b, p.elem, v)
			}
		}
		if !ok || p.i >= len(p.s) {
			return b, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return append(b, ']'), true
		default:
			return b, false
		}
	}
}

func (p *cdcArrayParser) quoted() (string, bool) {
	p.i++ // opening quote
	var sb strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", false
			}
			sb.WriteByte(p.s[p.i+1])
			p.i += 2
		case '"':
			p.i++
			return sb.String(), true
		default:
			sb.WriteByte(c)
			p.i++
		}
	}
	return "", false
}
