package pgcdc

// The value mapping, checked against values Debezium 3.6.1.Final's
// PostgreSQL connector wrote for the same text at its defaults (read from
// TestDebeziumParityTypes' runs), so that it is tested without Java.

import (
	"encoding/json"
	"strings"
	"testing"
)

// appendValue and appendText map a value of a type without a modifier,
// at the default settings.
func appendValue(b []byte, typ uint32, text string) []byte {
	return newValueConv(typ, -1, ValueModes{}).appendValue(b, text)
}

func appendText(b []byte, typ uint32, v []byte) []byte {
	return newValueConv(typ, -1, ValueModes{}).appendText(b, v)
}

// numericMod is the type modifier of numeric(p,s).
func numericMod(p, s int32) int32 { return p<<16 | s + 4 }

// debeziumVectors: a type, its modifier, PostgreSQL's text of a value, and
// the JSON Debezium wrote for it.
var debeziumVectors = []struct {
	typ  uint32
	mod  int32
	text string
	want string
}{
	{oidBool, -1, "t", `true`},
	{oidBit, 1, "1", `true`},
	{oidBit, 10, "1000000001", `"AQI="`},
	{oidBit, 8, "00000001", `"AQ=="`},
	{oidVarbit, -1, "1010101010101", `"VRU="`},
	{oidVarbit, 20, "0001", `"AQ=="`},
	{oidVarbit, 20, "110", `"Bg=="`},
	{oidInt2, -1, "-32768", `-32768`},
	{oidInt8, -1, "9223372036854775807", `9223372036854775807`},
	{oidOID, -1, "4294967295", `4294967295`},
	{oidFloat8, -1, "NaN", `"NaN"`},
	{oidFloat4, -1, "-Infinity", `"-Infinity"`},
	{oidBPChar, 9, "ab   ", `"ab   "`},
	{oidTimestamptz, -1, "2024-02-29 11:14:15.123456+00", `"2024-02-29T11:14:15.123456Z"`},
	{oidTimestamptz, -1, "1969-12-31 23:59:59+00", `"1969-12-31T23:59:59.000000Z"`},
	{oidTimestamptz, 0, "2024-02-29 11:14:16+00", `"2024-02-29T11:14:16Z"`},
	{oidTimestamptz, 3, "2024-02-29 11:14:15.1+00", `"2024-02-29T11:14:15.100Z"`},
	{oidTimestamptz, 3, "2024-02-29 11:14:15.1+02", `"2024-02-29T09:14:15.100Z"`},
	{oidTimetz, -1, "13:14:15.123456-05:30", `"18:44:15.123456Z"`},
	{oidTimetz, 3, "13:14:15.5+01", `"12:14:15.5Z"`},
	{oidTimetz, -1, "23:30:00-02", `"01:30:00Z"`},
	{oidInterval, -1, "P1Y2M3DT4H5M6.5S", `37091106500000`},
	{oidInterval, -1, "P-1Y-2M3DT-4H-5M-6.000007S", `-36572706000007`},
	{oidInterval, -1, "PT12.346S", `12346000`},
	{oidInterval, -1, "PT-1S", `-1000000`},
	{oidDate, -1, "2024-02-29", `19782`},
	{oidDate, -1, "1960-01-01", `-3653`},
	{oidTime, -1, "13:14:15.123456", `47655123456`},
	{oidTime, -1, "13:14:15.000001", `47655000001`},
	{oidTime, 0, "13:14:16", `47656000`},
	{oidTime, 3, "13:14:15.123", `47655123`},
	{oidTime, -1, "24:00:00", `86400000000`},
	{oidTimestamp, -1, "2024-02-29 13:14:15.123456", `1709212455123456`},
	{oidTimestamp, 0, "2024-02-29 13:14:16", `1709212456000`},
	{oidTimestamp, 3, "2024-02-29 13:14:15.124", `1709212455124`},
	{oidTimestamp, -1, "1960-01-01 00:00:00.5", `-315619199500000`},
	{oidJSON, -1, `[1, {"b": 2}]`, `"[1, {\"b\": 2}]"`},
	{oidJSONB, -1, `{"a": [1, 2.50, null]}`, `"{\"a\": [1, 2.50, null]}"`},
	{oidUUID, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
	{oidPoint, -1, "(1.5,-2)", `{"x":1.5,"y":-2,"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAADA","srid":null}`},
	{oidPoint, -1, "(1.5,2)", `{"x":1.5,"y":2,"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAABA","srid":null}`},
	{oidBytea, -1, `\xdeadbeef`, `"3q2+7w=="`},
	{oidNumeric, numericMod(10, 2), "-12.50", `"+x4="`},
	{oidNumeric, numericMod(10, 2), "123.45", `"MDk="`},
	{oidNumeric, numericMod(5, 0), "42", `"Kg=="`},
	{oidNumeric, -1, "123456789012345678901234567890.123456789", `{"scale":9,"value":"XODppWAV/sWq36MorjmBFQ=="}`},
	{oidNumeric, -1, "1234.5", `{"scale":1,"value":"MDk="}`},
	{oidNumeric, -1, "NaN", `null`},
	{oidMoney, -1, "-$12.34", `"+y4="`},
	{oidMoney, -1, "$12.34", `"BNI="`},
	{oidMoney, -1, "$92,233,720,368,547,758.07", `"f/////////8="`},
	{1182, -1, "{2024-02-29,NULL}", `[19782,null]`},
	{1115, -1, `{"2024-02-29 13:14:15"}`, `[1709212455000000]`},
	{1185, -1, `{"2024-02-29 11:14:15+00"}`, `["2024-02-29T11:14:15.000000Z"]`},
	{3807, -1, `{"{\"x\": 1}"}`, `["{\"x\": 1}"]`},
	{1001, -1, `{"\\x0102"}`, `["AQI="]`},
	{1000, -1, "{t,f}", `[true,false]`},
	{1022, -1, "{1.5,2}", `[1.5,2]`},
}

// TestDebeziumValueVectors checks the mapping of each value against
// Debezium's, on both paths (text and tuple bytes).
func TestDebeziumValueVectors(t *testing.T) {
	for _, v := range debeziumVectors {
		c := newValueConv(v.typ, v.mod, ValueModes{})
		got := string(c.appendValue(nil, v.text))
		if got != v.want {
			t.Errorf("type %d(%d) %q: got %s, want %s", v.typ, v.mod, v.text, got, v.want)
		}
		if b := string(c.appendText(nil, []byte(v.text))); b != got {
			t.Errorf("type %d(%d) %q: bytes path %s, string path %s", v.typ, v.mod, v.text, b, got)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("type %d(%d) %q: invalid JSON %s", v.typ, v.mod, v.text, got)
		}
	}
}

// TestDecimalHandlingModes: numeric and money in the string and double
// modes.
func TestDecimalHandlingModes(t *testing.T) {
	for _, v := range []struct {
		mode DecimalHandling
		typ  uint32
		mod  int32
		text string
		want string
	}{
		{DecimalString, oidNumeric, numericMod(10, 2), "-12.50", `"-12.50"`},
		{DecimalString, oidNumeric, -1, "NaN", `"NaN"`},
		{DecimalString, oidMoney, -1, "-$1,234.56", `"-1234.56"`},
		{DecimalDouble, oidNumeric, -1, "1234.5", `1234.5`},
		{DecimalDouble, oidNumeric, -1, "NaN", `"NaN"`},
		{DecimalDouble, oidMoney, -1, "($12.34)", `-12.34`},
		{DecimalPrecise, 1231, -1, "{1.50,NaN}", `["1.50","NaN"]`}, // arrays of numeric: exact strings
	} {
		got := string(newValueConv(v.typ, v.mod, ValueModes{Decimal: v.mode}).appendValue(nil, v.text))
		if got != v.want {
			t.Errorf("mode %d, type %d %q: got %s, want %s", v.mode, v.typ, v.text, got, v.want)
		}
	}
}

func TestParseValueModes(t *testing.T) {
	for _, c := range []struct {
		names [4]string
		want  ValueModes
	}{
		{[4]string{"", "", "", ""}, ValueModes{}},
		{[4]string{"precise", "adaptive", "bytes", "numeric"}, ValueModes{}},
		{[4]string{"string", "adaptive_time_microseconds", "base64", "string"}, ValueModes{DecimalString, TimeAdaptiveMicroseconds, BinaryBase64, IntervalString}},
		{[4]string{"double", "connect", "base64-url-safe", ""}, ValueModes{DecimalDouble, TimeConnect, BinaryBase64URL, IntervalNumeric}},
		{[4]string{"", "", "hex", ""}, ValueModes{Binary: BinaryHex}},
	} {
		got, err := ParseValueModes(c.names[0], c.names[1], c.names[2], c.names[3])
		if err != nil || got != c.want {
			t.Errorf("ParseValueModes(%q) = %+v, %v; want %+v", c.names, got, err, c.want)
		}
	}
	_, err := ParseValueModes("exact", "micro", "base32", "iso")
	for _, want := range []string{`decimal.handling.mode "exact" (want one of precise, string, double)`,
		`time.precision.mode "micro"`, `binary.handling.mode "base32"`, `interval.handling.mode "iso"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseValueModes of unknown names: %v, want %s", err, want)
		}
	}
}

// TestIntervalString: interval.handling.mode string, as Debezium wrote it.
func TestIntervalString(t *testing.T) {
	c := newValueConv(oidInterval, -1, ValueModes{Interval: IntervalString})
	for text, want := range map[string]string{
		"P1Y2M3DT4H5M6.5S":           `"P1Y2M3DT4H5M6.5S"`,
		"P-1Y-2M3DT-4H-5M-6.000007S": `"P-1Y-2M3DT-4H-5M-6.000007S"`,
		"PT12.346S":                  `"P0Y0M0DT0H0M12.346S"`,
		"PT0S":                       `"P0Y0M0DT0H0M0S"`,
		"1 day":                      `"1 day"`, // not ISO: kept as text
	} {
		if got := string(c.appendValue(nil, text)); got != want {
			t.Errorf("%q: got %s, want %s", text, got, want)
		}
	}
}
