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
func cdcArrayElem(typ uint32) (uint32, bool) {
	switch typ {
	case 1000:
		return cdcOIDBool, true
	case 1001:
		return cdcOIDBytea, true
	case 1005:
		return cdcOIDInt2, true
	case 1007:
		return cdcOIDInt4, true
	case 1016:
		return cdcOIDInt8, true
	case 1028:
		return cdcOIDOID, true
	case 199:
		return cdcOIDJSON, true
	case 3807:
		return cdcOIDJSONB, true
	case 1021:
		return cdcOIDFloat4, true
	case 1022:
		return cdcOIDFloat8, true
	case 1115:
		return cdcOIDTimestamp, true
	case 1185:
		return cdcOIDTimestamptz, true
	case 1231:
		return cdcOIDNumeric, true
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
		if elem, ok := cdcArrayElem(typ); ok {
			if out, ok := cdcAppendArray(b, elem, text); ok {
				return out
			}
		}
	}
	return cdc.AppendString(b, text)
}

func cdcIsInteger[S string | []byte](s S) bool {
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

// cdcAppendText is cdcAppendValue for a value given as bytes (a tuple's
// value, which Go would copy to make a string): the frequent types are
// mapped from the bytes directly, the others through cdcAppendValue. The
// output is the same as cdcAppendValue's (TestCDCAppendTextSameAsValue,
// FuzzCDCAppendText).
func cdcAppendText(b []byte, typ uint32, v []byte) []byte {
	switch typ {
	case cdcOIDInt2, cdcOIDInt4, cdcOIDInt8, cdcOIDOID:
		if cdcIsInteger(v) {
			return append(b, v...)
		}
	case cdcOIDBool:
		if len(v) == 1 && v[0] == 't' {
			return append(b, "true"...)
		}
		if len(v) == 1 && v[0] == 'f' {
			return append(b, "false"...)
		}
	case cdcOIDJSON, cdcOIDJSONB:
		return append(b, v...)
	case cdcOIDTimestamptz, cdcOIDTimestamp:
		if cdcPlain(v) {
			return cdcAppendPlainTimestamp(b, v, typ == cdcOIDTimestamptz)
		}
	case cdcOIDFloat4, cdcOIDFloat8, cdcOIDBytea:
	default:
		if _, isArray := cdcArrayElem(typ); !isArray {
			// Mapped to a JSON string of the text.
			if cdcPlain(v) {
				b = append(b, '"')
				b = append(b, v...)
				return append(b, '"')
			}
		}
	}
	return cdcAppendValue(b, typ, string(v))
}

// cdcPlain reports whether v is its own JSON string body: printable ASCII
// without '"' and '\\'.
func cdcPlain(v []byte) bool {
	for _, c := range v {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// cdcAppendPlainTimestamp appends the JSON string of cdcTimestamptz(v)
// (tz) or cdcTimestamp(v) for a plain v, without making strings.
func cdcAppendPlainTimestamp(b []byte, v []byte, tz bool) []byte {
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
		} else if n > 19 && (t[n-3] == '+' || t[n-3] == '-') && cdcIsInteger(t[n-2:]) {
			b = append(b, ":00"...) // "+05" → "+05:00"
		}
	}
	return append(b, '"')
}
