package pgcdc

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit/cdc"
)

// PostgreSQL type OIDs that change data capture maps to JSON by type.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// arrayElem maps the OIDs of array types to their element types.
func arrayElem(typ uint32) (uint32, bool) {
	switch typ {
	case 1000:
		return oidBool, true
	case 1001:
		return oidBytea, true
	case 1005:
		return oidInt2, true
	case 1007:
		return oidInt4, true
	case 1016:
		return oidInt8, true
	case 1028:
		return oidOID, true
	case 199:
		return oidJSON, true
	case 3807:
		return oidJSONB, true
	case 1021:
		return oidFloat4, true
	case 1022:
		return oidFloat8, true
	case 1115:
		return oidTimestamp, true
	case 1185:
		return oidTimestamptz, true
	case 1231:
		return oidNumeric, true
	case 1009:
		return 25, true // text
	case 1015:
		return 1043, true // varchar
	case 1014:
		return 1042, true // bpchar
	case 1003:
		return 19, true // name
	case 2951:
		return 2950, true // uuid
	case 1182:
		return 1082, true // date
	case 1183:
		return 1083, true // time
	case 1270:
		return 1266, true // timetz
	case 1187:
		return 1186, true // interval
	case 1041:
		return 869, true // inet
	case 651:
		return 650, true // cidr
	case 1040:
		return 829, true // macaddr
	}
	return 0, false
}

// appendValue appends the JSON form of a column value given in
// PostgreSQL's text output (with DateStyle ISO, TimeZone UTC,
// extra_float_digits 3, bytea_output hex):
// integers and finite floats as JSON numbers, numeric as a string (exact),
// bool as a boolean, json and jsonb as JSON, timestamptz in RFC 3339 (UTC,
// "Z"), timestamp in ISO 8601 without zone, bytea in base64, arrays as JSON
// arrays of their elements, everything else (text, uuid, dates, enums, …)
// as a JSON string of its text.
func appendValue(b []byte, typ uint32, text string) []byte {
	switch typ {
	case oidInt2, oidInt4, oidInt8, oidOID:
		if isInteger(text) {
			return append(b, text...)
		}
	case oidFloat4, oidFloat8:
		if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "NnIi") {
			return append(b, text...)
		}
	case oidBool:
		switch text {
		case "t":
			return append(b, "true"...)
		case "f":
			return append(b, "false"...)
		}
	case oidJSON, oidJSONB:
		return append(b, text...)
	case oidTimestamptz:
		return cdc.AppendString(b, timestamptzValue(text))
	case oidTimestamp:
		return cdc.AppendString(b, plainTimestamp(text))
	case oidBytea:
		if strings.HasPrefix(text, `\x`) {
			raw, err := hex.DecodeString(text[2:])
			if err == nil {
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, raw)
				return append(b, '"')
			}
		}
	default:
		if elem, ok := arrayElem(typ); ok {
			if out, ok := appendArray(b, elem, text); ok {
				return out
			}
		}
	}
	return cdc.AppendString(b, text)
}

func isInteger[S string | []byte](s S) bool {
	if len(s) == 0 || len(s) == 1 && s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-') {
			return false
		}
	}
	return true
}

// timestamptzValue turns "2024-01-02 03:04:05.123456+00" into
// "2024-01-02T03:04:05.123456Z"; other forms (infinity, BC dates, other
// offsets) keep their text with the 'T' separator when there is one.
func timestamptzValue(s string) string {
	t := plainTimestamp(s)
	if strings.HasSuffix(t, "+00") {
		return t[:len(t)-3] + "Z"
	}
	if n := len(t); n > 19 && (t[n-3] == '+' || t[n-3] == '-') && isInteger(t[n-2:]) {
		return t + ":00" // "+05" → "+05:00"
	}
	return t
}

func plainTimestamp(s string) string {
	if len(s) >= 19 && s[10] == ' ' && s[4] == '-' {
		return s[:10] + "T" + s[11:]
	}
	return s
}

// appendArray appends a PostgreSQL array literal ("{1,2,NULL}",
// "{{1,2},{3,4}}", `{"a b","c\"d"}`, "[0:1]={1,2}") as a JSON array whose
// elements are mapped by elem. It reports false for a malformed literal.
func appendArray(b []byte, elem uint32, s string) ([]byte, bool) {
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, '=')
		if i < 0 {
			return b, false
		}
		s = s[i+1:]
	}
	p := arrayParser{s: s, elem: elem}
	out, ok := p.array(b)
	if !ok || p.i != len(p.s) {
		return b, false
	}
	return out, true
}

type arrayParser struct {
	s    string
	i    int
	elem uint32
}

func (p *arrayParser) array(b []byte) ([]byte, bool) {
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
				b = appendValue(b, p.elem, v)
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
				b = appendValue(b, p.elem, v)
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

func (p *arrayParser) quoted() (string, bool) {
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

// appendText is appendValue for a value given as bytes (a tuple's
// value, which Go would copy to make a string): the frequent types are
// mapped from the bytes directly, the others through appendValue. The
// output is the same as appendValue's (TestCDCAppendTextSameAsValue,
// FuzzCDCAppendText).
func appendText(b []byte, typ uint32, v []byte) []byte {
	switch typ {
	case oidInt2, oidInt4, oidInt8, oidOID:
		if isInteger(v) {
			return append(b, v...)
		}
	case oidBool:
		if len(v) == 1 && v[0] == 't' {
			return append(b, "true"...)
		}
		if len(v) == 1 && v[0] == 'f' {
			return append(b, "false"...)
		}
	case oidJSON, oidJSONB:
		return append(b, v...)
	case oidTimestamptz, oidTimestamp:
		if plainValue(v) {
			return appendPlainTimestamp(b, v, typ == oidTimestamptz)
		}
	case oidFloat4, oidFloat8, oidBytea:
	default:
		if _, isArray := arrayElem(typ); !isArray {
			// Mapped to a JSON string of the text.
			if plainValue(v) {
				b = append(b, '"')
				b = append(b, v...)
				return append(b, '"')
			}
		}
	}
	return appendValue(b, typ, string(v))
}

// plainValue reports whether v is its own JSON string body: printable ASCII
// without '"' and '\\'.
func plainValue(v []byte) bool {
	for _, c := range v {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendPlainTimestamp appends the JSON string of timestamptzValue(v)
// (tz) or plainTimestamp(v) for a plain v, without making strings.
func appendPlainTimestamp(b []byte, v []byte, tz bool) []byte {
	b = append(b, '"')
	start := len(b)
	if len(v) >= 19 && v[10] == ' ' && v[4] == '-' {
		b = append(b, v[:10]...)
		b = append(b, 'T')
		b = append(b, v[11:]...)
	} else {
		b = append(b, v...)
	}
	if tz {
		t := b[start:]
		n := len(t)
		if n >= 3 && t[n-3] == '+' && t[n-2] == '0' && t[n-1] == '0' {
			b = append(b[:len(b)-3], 'Z')
		} else if n > 19 && (t[n-3] == '+' || t[n-3] == '-') && isInteger(t[n-2:]) {
			b = append(b, ":00"...) // "+05" → "+05:00"
		}
	}
	return append(b, '"')
}
