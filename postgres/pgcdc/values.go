package pgcdc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/eventkit/eventkit"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventkit/eventkit/cdc"
)

// PostgreSQL type OIDs that change data capture maps to JSON by type.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidPoint       = 600
	oidFloat4      = 700
	oidFloat8      = 701
	oidMoney       = 790
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidTimetz      = 1266
	oidBit         = 1560
	oidVarbit      = 1562
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// The modes of the value mapping, Debezium's: each type is the values of
// one of its connector properties, the zero value its default.
type (
	// DecimalHandling is decimal.handling.mode, for numeric and money
	// values. DecimalPrecise ("precise", the default): the unscaled value
	// as big-endian two's-complement bytes in base64 (Kafka Connect's
	// Decimal) for numeric(p,s) and money (scale 2); for numeric without
	// a scale, {"scale":s,"value":"<bytes>"} (VariableScaleDecimal); NaN
	// and infinities null. DecimalString ("string"): the exact decimal as
	// a JSON string ("-12.50"), NaN and infinities as their text
	// (eventkit's form before it matched Debezium's default).
	// DecimalDouble ("double"): a JSON number, NaN and infinities as
	// strings.
	DecimalHandling int
	// TimePrecision is time.precision.mode, for time and timestamp values.
	// TimeAdaptive ("adaptive", the default): milliseconds for a
	// precision of 0 to 3 digits, microseconds else.
	// TimeAdaptiveMicroseconds ("adaptive_time_microseconds"): time always
	// in microseconds, timestamp as TimeAdaptive. TimeConnect ("connect"):
	// milliseconds whatever the precision (finer digits dropped).
	TimePrecision int
	// BinaryHandling is binary.handling.mode, for bytea values.
	// BinaryBytes ("bytes", the default) and BinaryBase64 ("base64"):
	// base64 in JSON; BinaryBase64URL ("base64-url-safe"): base64 with the
	// URL-safe alphabet; BinaryHex ("hex"): lower-case hexadecimal.
	BinaryHandling int
	// IntervalHandling is interval.handling.mode, for interval values.
	// IntervalNumeric ("numeric", the default): microseconds, a month
	// counted as 30.4375 days (MicroDuration). IntervalString ("string"):
	// "P<y>Y<m>M<d>DT<h>H<m>M<s>S" with every part, exact.
	IntervalHandling int
)

// The modes, in the order of Debezium's names (see their types).
const (
	DecimalPrecise, DecimalString, DecimalDouble          DecimalHandling  = 0, 1, 2
	TimeAdaptive, TimeAdaptiveMicroseconds, TimeConnect   TimePrecision    = 0, 1, 2
	BinaryBytes, BinaryBase64, BinaryBase64URL, BinaryHex BinaryHandling   = 0, 1, 2, 3
	IntervalNumeric, IntervalString                       IntervalHandling = 0, 1
)

// ValueModes are Debezium's modes of the value mapping; the zero value is
// Debezium's defaults (precise, adaptive, bytes, numeric).
type ValueModes struct {
	Decimal  DecimalHandling  // decimal.handling.mode
	Time     TimePrecision    // time.precision.mode
	Binary   BinaryHandling   // binary.handling.mode
	Interval IntervalHandling // interval.handling.mode
}

// WithValueModes sets the modes of the value mapping (default: Debezium's
// defaults). A mode outside the constants above is an invalid option.
func WithValueModes(m ValueModes) Option {
	return func(o *settings) error {
		if m.Decimal < 0 || m.Decimal > DecimalDouble || m.Time < 0 || m.Time > TimeConnect ||
			m.Binary < 0 || m.Binary > BinaryHex || m.Interval < 0 || m.Interval > IntervalString {
			return eventkit.InvalidOption("pgcdc.WithValueModes", fmt.Sprintf("unknown mode in %+v", m))
		}
		o.values = m
		return nil
	}
}

// ParseValueModes returns the modes named by the values of Debezium's
// decimal.handling.mode, time.precision.mode, binary.handling.mode and
// interval.handling.mode properties ("" for a default).
func ParseValueModes(decimal, timePrecision, binary, interval string) (ValueModes, error) {
	var m ValueModes
	var errs [4]error
	m.Decimal, errs[0] = parseMode[DecimalHandling](decimal, "decimal.handling.mode", "precise", "string", "double")
	m.Time, errs[1] = parseMode[TimePrecision](timePrecision, "time.precision.mode", "adaptive", "adaptive_time_microseconds", "connect")
	m.Binary, errs[2] = parseMode[BinaryHandling](binary, "binary.handling.mode", "bytes", "base64", "base64-url-safe", "hex")
	m.Interval, errs[3] = parseMode[IntervalHandling](interval, "interval.handling.mode", "numeric", "string")
	return m, errors.Join(errs[:]...)
}

// parseMode returns the mode of name: its index in names.
func parseMode[M ~int](name, property string, names ...string) (M, error) {
	if name == "" {
		return 0, nil
	}
	if i := slices.Index(names, name); i >= 0 {
		return M(i), nil
	}
	return 0, fmt.Errorf("postgres: cdc: %s %q (want one of %s)", property, name, strings.Join(names, ", "))
}

// valueKind is how a column's text is turned into JSON.
type valueKind uint8

const (
	kString          valueKind = iota // a JSON string of the text
	kInt                              // a JSON number
	kFloat                            // a JSON number; NaN, ±Infinity as strings
	kBool                             // true / false
	kJSONText                         // json, jsonb: a JSON string of the document's text
	kBytea                            // base64 of the bytes
	kBit1                             // bit(1): true / false
	kBits                             // bit(n), varbit: little-endian bytes in base64
	kDate                             // days since 1970-01-01
	kTimeMillis                       // time(0..3): milliseconds of the day
	kTimeMicros                       // time(4..6): microseconds of the day
	kTimestampMillis                  // timestamp(0..3): milliseconds since the epoch
	kTimestampMicros                  // timestamp(4..6): microseconds since the epoch
	kTimestamptz                      // RFC 3339 in UTC with the column's digits
	kTimetz                           // HH:MM:SS[.f]Z in UTC
	kInterval                         // microseconds (months of 30.4375 days)
	kIntervalString                   // P<y>Y<m>M<d>DT<h>H<m>M<s>S
	kNumeric                          // by DecimalHandling
	kMoney                            // by DecimalHandling, scale 2
	kPoint                            // {"x","y","wkb","srid"}
	kArray                            // a JSON array of the element's mapping
)

// valueConv is the mapping of one column (or array element) type.
type valueConv struct {
	kind    valueKind
	scale   int // numeric(p,s): s; -1 without a scale
	digits  int // timestamptz: fraction digits
	fixed   int // bit(n): n; 0 for varbit
	decimal DecimalHandling
	binary  BinaryHandling
	elem    *valueConv // kArray
}

// timeKind picks the milliseconds or the microseconds form by the mode
// and, in the adaptive modes, the precision (0 to 3 digits: milliseconds).
func timeKind(mod int32, mode TimePrecision, isTime bool, millis, micros valueKind) valueKind {
	switch {
	case mode == TimeConnect:
		return millis
	case mode == TimeAdaptiveMicroseconds && isTime:
		return micros
	case timePrecision(mod) <= 3:
		return millis
	}
	return micros
}

// timePrecision returns the precision of time types (6 when not given).
func timePrecision(mod int32) int {
	if mod < 0 {
		return 6
	}
	return int(mod)
}

// newValueConv returns the mapping of a type (with its type modifier, -1
// when none) by Debezium's modes as given (interval.handling.mode
// numeric).
func newValueConv(typ uint32, mod int32, m ValueModes) *valueConv {
	c := &valueConv{decimal: m.Decimal, binary: m.Binary, scale: -1}
	switch typ {
	case oidInt2, oidInt4, oidInt8, oidOID:
		c.kind = kInt
	case oidFloat4, oidFloat8:
		c.kind = kFloat
	case oidBool:
		c.kind = kBool
	case oidJSON, oidJSONB:
		c.kind = kJSONText
	case oidBytea:
		c.kind = kBytea
	case oidBit:
		if mod == 1 {
			c.kind = kBit1
		} else {
			c.kind, c.fixed = kBits, max(int(mod), 0)
		}
	case oidVarbit:
		c.kind = kBits
	case oidDate:
		c.kind = kDate
	case oidTime:
		c.kind = timeKind(mod, m.Time, true, kTimeMillis, kTimeMicros)
	case oidTimestamp:
		c.kind = timeKind(mod, m.Time, false, kTimestampMillis, kTimestampMicros)
	case oidTimestamptz:
		c.kind, c.digits = kTimestamptz, timePrecision(mod)
	case oidTimetz:
		c.kind = kTimetz
	case oidInterval:
		c.kind = kInterval
		if m.Interval == IntervalString {
			c.kind = kIntervalString
		}
	case oidNumeric:
		c.kind = kNumeric
		if mod >= 4 {
			c.scale = int((mod - 4) & 0xffff)
		}
	case oidMoney:
		c.kind, c.scale = kMoney, 2
	case oidPoint:
		c.kind = kPoint
	default:
		if elem, ok := arrayElem(typ); ok {
			c.kind = kArray
			c.elem = newValueConv(elem, mod, m)
			if c.elem.kind == kNumeric || c.elem.kind == kMoney {
				// Debezium sends null for arrays of numbers with decimals;
				// eventkit keeps their values, exact, as strings.
				c.elem.decimal = DecimalString
			}
		}
	}
	return c
}

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
		return oidText, true
	case 1015:
		return oidVarchar, true
	case 1014:
		return oidBPChar, true
	case 1003:
		return oidName, true
	case 2951:
		return oidUUID, true
	case 1182:
		return oidDate, true
	case 1183:
		return oidTime, true
	case 1270:
		return oidTimetz, true
	case 1187:
		return oidInterval, true
	case 1041:
		return 869, true // inet
	case 651:
		return 650, true // cidr
	case 1040:
		return 829, true // macaddr
	case 791:
		return oidMoney, true
	case 1561:
		return oidBit, true
	case 1563:
		return oidVarbit, true
	case 1017:
		return oidPoint, true
	}
	return 0, false
}

// appendValue appends the JSON form of a value given in PostgreSQL's text
// output (with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601,
// extra_float_digits 3, bytea_output hex), mapped as Debezium's
// PostgreSQL connector maps it at its defaults (docs/cdc.md lists the
// mapping). A text that does not parse as its type is written as a JSON
// string of the text.
func (c *valueConv) appendValue(b []byte, text string) []byte {
	switch c.kind {
	case kInt:
		if isInteger(text) {
			return append(b, text...)
		}
	case kFloat:
		if _, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "NnIi") {
			return append(b, text...)
		}
	case kBool, kBit1:
		switch text {
		case "t", "1":
			return append(b, "true"...)
		case "f", "0":
			return append(b, "false"...)
		}
	case kJSONText:
	case kBytea:
		if strings.HasPrefix(text, `\x`) {
			if raw, err := hex.DecodeString(text[2:]); err == nil {
				return appendBinary(b, raw, c.binary)
			}
		}
	case kBits:
		if raw, ok := bitsValue(text, c.fixed); ok {
			return appendBase64(b, raw)
		}
	case kDate:
		s, bc := cutBC(text)
		if d, ok := parseDate(s, bc); ok {
			return strconv.AppendInt(b, d, 10)
		}
	case kTimeMillis, kTimeMicros:
		if us, ok := parseTimeOfDay(text); ok {
			if c.kind == kTimeMillis {
				us /= 1000
			}
			return strconv.AppendInt(b, us, 10)
		}
	case kTimestampMillis, kTimestampMicros:
		if us, ok := parseTimestamp(text); ok {
			if c.kind == kTimestampMillis {
				us = floorDiv(us, 1000)
			}
			return strconv.AppendInt(b, us, 10)
		}
	case kTimestamptz:
		if out, ok := appendZonedTimestamp(b, text, c.digits); ok {
			return out
		}
	case kTimetz:
		if s, ok := zonedTime(text); ok {
			return cdc.AppendString(b, s)
		}
	case kInterval:
		if us, ok := parseInterval(text); ok {
			return strconv.AppendInt(b, us, 10)
		}
	case kIntervalString:
		if parts, ok := intervalParts(text); ok {
			return cdc.AppendString(b, "P"+parts[0]+"Y"+parts[1]+"M"+parts[2]+"DT"+parts[3]+"H"+parts[4]+"M"+parts[5]+"S")
		}
	case kNumeric, kMoney:
		return c.appendDecimal(b, text)
	case kPoint:
		if out, ok := appendPoint(b, text); ok {
			return out
		}
	case kArray:
		if out, ok := appendArray(b, c.elem, text); ok {
			return out
		}
	}
	return cdc.AppendString(b, text)
}

// appendBinary appends bytes by the binary handling mode.
func appendBinary(b, raw []byte, m BinaryHandling) []byte {
	b = append(b, '"')
	switch m {
	case BinaryHex:
		b = hex.AppendEncode(b, raw)
	case BinaryBase64URL:
		b = base64.URLEncoding.AppendEncode(b, raw)
	default:
		b = base64.StdEncoding.AppendEncode(b, raw)
	}
	return append(b, '"')
}

func appendBase64(b, raw []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
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

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// bitsValue turns a bit string ("101") into Debezium's bytes: the number it
// writes, least significant byte first, in ceil(fixed/8) bytes for bit(n),
// in as many bytes as the value needs for varbit.
func bitsValue(s string, fixed int) ([]byte, bool) {
	n := new(big.Int)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '0', '1':
			n.Lsh(n, 1)
			if s[i] == '1' {
				n.SetBit(n, 0, 1)
			}
		default:
			return nil, false
		}
	}
	be := n.Bytes()
	size := len(be)
	if fixed > 0 {
		size = max(size, (fixed+7)/8)
	}
	out := make([]byte, size)
	for i, x := range be {
		out[len(be)-1-i] = x
	}
	return out, true
}

// textBytes is a value's text, as a string or as the bytes of a tuple
// (parsed without copying them).
type textBytes interface{ ~string | ~[]byte }

// digits returns the number of 1 to 18 decimal digits.
func digits[S textBytes](s S) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// cutBC removes the " BC" suffix of a date or timestamp.
func cutBC[S textBytes](s S) (S, bool) {
	if n := len(s); n > 3 && string(s[n-3:]) == " BC" {
		return s[:n-3], true
	}
	return s, false
}

// parseDate returns the days since 1970-01-01 of "YYYY-MM-DD" (bc: a
// year before Christ).
func parseDate[S textBytes](s S, bc bool) (int64, bool) {
	i := 0
	for i < len(s) && s[i] != '-' {
		i++
	}
	if i < 1 || len(s) != i+6 || s[i+3] != '-' {
		return 0, false
	}
	y, ok1 := digits(s[:i])
	m, ok2 := digits(s[i+1 : i+3])
	d, ok3 := digits(s[i+4:])
	if !ok1 || !ok2 || !ok3 || y > 1_000_000 {
		return 0, false
	}
	if bc {
		y = 1 - y
	}
	return floorDiv(time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, time.UTC).Unix(), 86400), true
}

// parseTimeOfDay returns the microseconds of "HH:MM:SS[.ffffff]".
func parseTimeOfDay[S textBytes](s S) (int64, bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return 0, false
	}
	h, ok1 := digits(s[:2])
	m, ok2 := digits(s[3:5])
	sec, ok3 := digits(s[6:8])
	frac, ok4 := parseFraction(s[8:])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	return (h*3600+m*60+sec)*1e6 + frac, true
}

// parseFraction returns the microseconds of "" or ".ffffff".
func parseFraction[S textBytes](s S) (int64, bool) {
	if len(s) == 0 {
		return 0, true
	}
	if s[0] != '.' || len(s) > 7 {
		return 0, false
	}
	us, ok := digits(s[1:])
	for i := len(s) - 1; i < 6; i++ {
		us *= 10
	}
	return us, ok
}

// parseTimestamp returns the microseconds since the epoch of
// "YYYY-MM-DD HH:MM:SS[.ffffff]" (with " BC").
func parseTimestamp[S textBytes](s S) (int64, bool) {
	s, bc := cutBC(s)
	i := 0
	for i < len(s) && s[i] != ' ' {
		i++
	}
	if i == len(s) {
		return 0, false
	}
	d, ok1 := parseDate(s[:i], bc)
	us, ok2 := parseTimeOfDay(s[i+1:])
	if !ok1 || !ok2 {
		return 0, false
	}
	return d*86400e6 + us, true
}

// splitOffset splits "...+HH[:MM[:SS]]" into the text before the zone and
// the zone's offset east of UTC in seconds.
func splitOffset[S textBytes](s S) (S, int64, bool) {
	i := len(s) - 1
	for i >= 0 && s[i] != '+' && s[i] != '-' {
		i--
	}
	if i < 8 {
		return s, 0, false
	}
	z := s[i+1:]
	var off int64
	for j, unit := range [3]int64{3600, 60, 1} {
		if len(z) < 2 {
			return s, 0, false
		}
		v, ok := digits(z[:2])
		if !ok {
			return s, 0, false
		}
		off += v * unit
		z = z[2:]
		if len(z) == 0 {
			break
		}
		if z[0] != ':' || j == 2 {
			return s, 0, false
		}
		z = z[1:]
	}
	if s[i] == '-' {
		off = -off
	}
	return s[:i], off, true
}

// zonedLayouts are the layouts of ZonedTimestamp by fraction digits.
var zonedLayouts = [7]string{"2006-01-02T15:04:05Z", "2006-01-02T15:04:05.0Z", "2006-01-02T15:04:05.00Z",
	"2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05.0000Z", "2006-01-02T15:04:05.00000Z", "2006-01-02T15:04:05.000000Z"}

// appendZonedTimestamp appends "2024-02-29 11:14:15.1+00" as the JSON
// string "2024-02-29T11:14:15.100Z": in UTC with digits fraction digits,
// Debezium's ZonedTimestamp for a timestamptz(digits).
func appendZonedTimestamp[S textBytes](b []byte, s S, digits int) ([]byte, bool) {
	ts, off, ok := splitOffset(s)
	if !ok {
		return b, false
	}
	if _, bc := cutBC(s); bc {
		return b, false
	}
	us, ok := parseTimestamp(ts)
	if !ok {
		return b, false
	}
	t := time.UnixMicro(us - off*1e6).UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, zonedLayouts[min(max(digits, 0), 6)])
	return append(b, '"'), true
}

// zonedTime turns "13:14:15.5-05:30" into "18:44:15.5Z" (the time in UTC,
// the fraction without trailing zeros), Debezium's ZonedTime.
func zonedTime(s string) (string, bool) {
	tm, off, ok := splitOffset(s)
	if !ok {
		return "", false
	}
	us, ok := parseTimeOfDay(tm)
	if !ok {
		return "", false
	}
	us -= off * 1e6
	const day = 86400e6
	us = ((us % day) + day) % day
	sec := us / 1e6
	b := make([]byte, 0, 20)
	for _, v := range []int64{sec / 3600, sec / 60 % 60, sec % 60} {
		if len(b) > 0 {
			b = append(b, ':')
		}
		if v < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	if f := us % 1e6; f != 0 {
		frac := strconv.FormatInt(f+1e6, 10)[1:]
		b = append(b, '.')
		b = append(b, strings.TrimRight(frac, "0")...)
	}
	return string(append(b, 'Z')), true
}

// parseInterval returns the microseconds of an ISO 8601 interval
// ("P1Y2M3DT4H5M6.5S", each part possibly negative), with a month of
// 30.4375 days (365.25/12), as Debezium's MicroDuration.
func parseInterval(s string) (int64, bool) {
	parts, ok := intervalParts(s)
	if !ok {
		return 0, false
	}
	// Microseconds per year, month (30.4375 days), day, hour, minute.
	per := [5]int64{12 * 2629800e6, 2629800e6, 86400e6, 3600e6, 60e6}
	var total int64
	for i, p := range parts[:5] {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return 0, false
		}
		total += v * per[i]
	}
	us, ok := secondsMicros(parts[5])
	return total + us, ok
}

// intervalParts returns the years, months, days, hours, minutes and
// seconds of an ISO 8601 interval as PostgreSQL writes it ("PT12.346S"),
// "0" for those it leaves out.
func intervalParts(s string) ([6]string, bool) {
	parts := [6]string{"0", "0", "0", "0", "0", "0"}
	if len(s) < 3 || s[0] != 'P' {
		return parts, false
	}
	inTime := false
	for i := 1; i < len(s); {
		if s[i] == 'T' {
			inTime = true
			i++
			continue
		}
		j := i
		for j < len(s) && (s[j] == '-' || s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i || j >= len(s) {
			return parts, false
		}
		k := strings.IndexByte("YMD", s[j])
		if inTime {
			k = strings.IndexByte("HMS", s[j])
			if k >= 0 {
				k += 3
			}
		}
		if k < 0 {
			return parts, false
		}
		parts[k] = s[i:j]
		i = j + 1
	}
	return parts, true
}

// secondsMicros returns the microseconds of "-6.000007".
func secondsMicros(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	f := int64(0)
	if frac != "" {
		var ok bool
		if f, ok = parseFraction("." + frac); !ok {
			return 0, false
		}
	}
	us := w*1e6 + f
	if neg {
		us = -us
	}
	return us, true
}

// decimalText returns the plain decimal text of a numeric ("-12.50") or a
// money value ("-$1,234.56", "($1.00)"), and whether it is a number (not
// NaN or an infinity).
func decimalText(s string, money bool) (string, bool) {
	if !money {
		if s == "" || strings.ContainsAny(s, "NnIi") {
			return s, false
		}
		return s, true
	}
	var b strings.Builder
	neg := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9' || c == '.':
			b.WriteByte(c)
		case c == '-' || c == '(':
			neg = true
		}
	}
	if b.Len() == 0 {
		return s, false
	}
	if neg {
		return "-" + b.String(), true
	}
	return b.String(), true
}

// appendDecimal appends a numeric or money value by the column's
// DecimalHandling.
func (c *valueConv) appendDecimal(b []byte, text string) []byte {
	dec, ok := decimalText(text, c.kind == kMoney)
	switch c.decimal {
	case DecimalString:
		return cdc.AppendString(b, dec)
	case DecimalDouble:
		if f, err := strconv.ParseFloat(dec, 64); ok && err == nil && !math.IsInf(f, 0) {
			return strconv.AppendFloat(b, f, 'g', -1, 64)
		}
		return cdc.AppendString(b, dec)
	}
	if !ok {
		return append(b, "null"...) // NaN, ±Infinity: Debezium sends null
	}
	if out, ok := appendPreciseInt64(b, dec, c.scale); ok {
		return out
	}
	unscaled, scale, ok := unscale(dec, c.scale)
	if !ok {
		return cdc.AppendString(b, text)
	}
	if c.scale < 0 {
		b = append(b, `{"scale":`...)
		b = strconv.AppendInt(b, int64(scale), 10)
		b = append(b, `,"value":`...)
		return append(appendBase64(b, twosComplement(unscaled)), '}')
	}
	return appendBase64(b, twosComplement(unscaled))
}

// appendPreciseInt64 appends the precise form of a decimal text whose
// unscaled value fits in 18 digits, without allocating; it reports false
// for other texts (appendDecimal then takes the general path).
func appendPreciseInt64[S textBytes](b []byte, s S, scale int) ([]byte, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] != '.' {
		i++
	}
	whole, frac := s[:i], s[:0]
	if i < len(s) {
		frac = s[i+1:]
		if len(frac) == 0 {
			return b, false
		}
	}
	sc := scale
	if sc < 0 {
		sc = len(frac)
	}
	if len(frac) > sc || len(whole)+sc > 18 || len(whole) == 0 {
		return b, false
	}
	w, ok := digits(whole)
	f := int64(0)
	if len(frac) > 0 {
		f, ok = digits(frac)
		if !ok {
			return b, false
		}
	}
	if !ok {
		return b, false
	}
	for j := len(frac); j < sc; j++ {
		f *= 10
	}
	for j := 0; j < sc; j++ {
		w *= 10
	}
	v := w + f
	if neg {
		v = -v
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	k := 0 // the shortest two's-complement form, as Java's BigInteger.toByteArray
	for k < 7 && (buf[k] == 0 && buf[k+1]&0x80 == 0 || buf[k] == 0xff && buf[k+1]&0x80 != 0) {
		k++
	}
	if scale < 0 {
		b = append(b, `{"scale":`...)
		b = strconv.AppendInt(b, int64(sc), 10)
		b = append(b, `,"value":`...)
		return append(appendBase64(b, buf[k:]), '}'), true
	}
	return appendBase64(b, buf[k:]), true
}

// unscale returns the unscaled integer of a plain decimal text at scale
// (the text's own scale when scale is -1), and that scale.
func unscale(s string, scale int) (*big.Int, int, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if scale < 0 {
		scale = len(frac)
	}
	if len(frac) > scale {
		// More digits than the column's scale: PostgreSQL rounded them
		// already; keep the text.
		return nil, 0, false
	}
	frac += strings.Repeat("0", scale-len(frac))
	n, ok := new(big.Int).SetString(whole+frac, 10)
	return n, scale, ok
}

// twosComplement returns n as Java's BigInteger.toByteArray does: the
// shortest big-endian two's-complement bytes.
func twosComplement(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n - 1, bytes inverted.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	for i := range b {
		b[i] = ^b[i]
	}
	return b
}

// appendPoint appends "(x,y)" as Debezium's Point: x, y and the point's
// WKB (little-endian), no SRID.
func appendPoint(b []byte, s string) ([]byte, bool) {
	if len(s) < 5 || s[0] != '(' || s[len(s)-1] != ')' {
		return b, false
	}
	xs, ys, ok := strings.Cut(s[1:len(s)-1], ",")
	x, err1 := strconv.ParseFloat(xs, 64)
	y, err2 := strconv.ParseFloat(ys, 64)
	if !ok || err1 != nil || err2 != nil || math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
		return b, false
	}
	wkb := make([]byte, 21)
	wkb[0] = 1 // little-endian
	binary.LittleEndian.PutUint32(wkb[1:], 1)
	binary.LittleEndian.PutUint64(wkb[5:], math.Float64bits(x))
	binary.LittleEndian.PutUint64(wkb[13:], math.Float64bits(y))
	b = append(b, `{"x":`...)
	b = strconv.AppendFloat(b, x, 'g', -1, 64)
	b = append(b, `,"y":`...)
	b = strconv.AppendFloat(b, y, 'g', -1, 64)
	b = append(b, `,"wkb":`...)
	b = appendBase64(b, wkb)
	return append(b, `,"srid":null}`...), true
}

// appendArray appends a PostgreSQL array literal ("{1,2,NULL}",
// "{{1,2},{3,4}}", `{"a b","c\"d"}`, "[0:1]={1,2}") as a JSON array whose
// elements are mapped by elem. It reports false for a malformed literal.
func appendArray(b []byte, elem *valueConv, s string) ([]byte, bool) {
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
	elem *valueConv
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
				b = p.elem.appendValue(b, v)
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
				b = p.elem.appendValue(b, v)
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
func (c *valueConv) appendText(b []byte, v []byte) []byte {
	switch c.kind {
	case kInt:
		if isInteger(v) {
			return append(b, v...)
		}
	case kBool:
		if len(v) == 1 && v[0] == 't' {
			return append(b, "true"...)
		}
		if len(v) == 1 && v[0] == 'f' {
			return append(b, "false"...)
		}
	case kString, kJSONText:
		// Mapped to a JSON string of the text.
		if plainValue(v) {
			b = append(b, '"')
			b = append(b, v...)
			return append(b, '"')
		}
	case kTimestampMicros:
		if us, ok := parseTimestamp(v); ok {
			return strconv.AppendInt(b, us, 10)
		}
	case kTimestamptz:
		if out, ok := appendZonedTimestamp(b, v, c.digits); ok {
			return out
		}
	case kNumeric:
		if c.decimal == DecimalPrecise {
			if out, ok := appendPreciseInt64(b, v, c.scale); ok {
				return out
			}
		}
	}
	return c.appendValue(b, string(v))
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
