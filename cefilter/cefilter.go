// Package cefilter evaluates the filter dialects of the CloudEvents
// Subscriptions API: the six mandatory ones (exact, prefix, suffix, all,
// any, not) and the optional sql, a CloudEvents SQL expression evaluated by
// the CloudEvents Go SDK (github.com/cloudevents/sdk-go/sql/v2).
//
// A filter is written in JSON as one object with one key, its dialect:
//
//	{"prefix": {"type": "com.example."}}
//	{"all": [{"exact": {"source": "/orders"}}, {"not": {"suffix": {"subject": ".tmp"}}}]}
//	{"sql": "type LIKE 'com.example.%' AND subject IS NOT NULL"}
//
// Guarantees: Parse and ParseList refuse every malformed filter (unknown
// dialect, more than one key, an empty attribute name or value, an empty
// all or any, a CloudEvents SQL expression that does not parse, nesting
// deeper than MaxDepth) with an *Error naming the field, so that a filter
// accepted is one that can be evaluated. Match never fails: an attribute
// the event lacks makes exact, prefix and suffix false, and a sql
// expression whose evaluation fails is false, as the specification says.
// Comparisons are case sensitive; attributes are compared in their
// canonical string form (time as RFC 3339, extensions as the CloudEvents
// type system formats them).
package cefilter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// MaxDepth bounds the nesting of all, any and not.
const MaxDepth = 32

// Dialects are the dialects Parse accepts.
var Dialects = []string{"exact", "prefix", "suffix", "all", "any", "not", "sql"}

// Filter is a parsed filter expression.
type Filter interface {
	// Match reports whether e passes the filter.
	Match(e event.Event) bool
}

// Error is a filter refused by Parse or ParseList. Field is the JSON path
// of the faulty part, from the name given to ParseList
// ("filters[1].all[0].prefix.type").
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return "cefilter: " + e.Field + ": " + e.Reason }

// ParseList parses a JSON array of filters, which passes an event when
// every filter does (an absent (null) or empty array passes every event).
// field names the array in errors ("filters").
func ParseList(raw json.RawMessage, field string) (Filter, error) {
	if isNull(raw) {
		return all(nil), nil
	}
	return parseArray(raw, field, 0, false)
}

// Parse parses one filter (a JSON object with one key, its dialect). field
// names it in errors.
func Parse(raw json.RawMessage, field string) (Filter, error) { return parse(raw, field, 0) }

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func parseArray(raw json.RawMessage, field string, depth int, nonEmpty bool) (all, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, &Error{field, "want an array of filters"}
	}
	if nonEmpty && len(items) == 0 {
		return nil, &Error{field, "want at least one filter"}
	}
	fs := make(all, len(items))
	for i, it := range items {
		f, err := parse(it, fmt.Sprintf("%s[%d]", field, i), depth+1)
		if err != nil {
			return nil, err
		}
		fs[i] = f
	}
	return fs, nil
}

func parse(raw json.RawMessage, field string, depth int) (Filter, error) {
	if depth > MaxDepth {
		return nil, &Error{field, fmt.Sprintf("filters nested deeper than %d", MaxDepth)}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, &Error{field, `want an object with one dialect, such as {"prefix": {"type": "com.example."}}`}
	}
	if len(obj) != 1 {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, &Error{field, fmt.Sprintf("want exactly one dialect, got %d (%s)", len(obj), strings.Join(keys, ", "))}
	}
	for dialect, body := range obj {
		sub := field + "." + dialect
		switch dialect {
		case "exact", "prefix", "suffix":
			return parseAttrs(dialect, body, sub)
		case "all", "any":
			fs, err := parseArray(body, sub, depth, true)
			if err != nil {
				return nil, err
			}
			if dialect == "any" {
				return anyOf(fs), nil
			}
			return fs, nil
		case "not":
			f, err := parse(body, sub, depth+1)
			if err != nil {
				return nil, err
			}
			return not{f}, nil
		case "sql":
			return parseSQL(body, sub)
		default:
			return nil, &Error{field, fmt.Sprintf("unsupported dialect %q (want one of %s)", dialect, strings.Join(Dialects, ", "))}
		}
	}
	panic("unreachable")
}

// attrMatch is an exact, prefix or suffix filter.
type attrMatch struct {
	cmp   func(s, v string) bool
	attrs []attrValue // sorted by name
}

type attrValue struct{ name, value string }

func parseAttrs(dialect string, body json.RawMessage, field string) (Filter, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, &Error{field, "want an object of attribute names to string values"}
	}
	if len(m) == 0 {
		return nil, &Error{field, "want at least one attribute"}
	}
	f := attrMatch{}
	switch dialect {
	case "exact":
		f.cmp = func(s, v string) bool { return s == v }
	case "prefix":
		f.cmp = strings.HasPrefix
	default:
		f.cmp = strings.HasSuffix
	}
	for name, raw := range m {
		where := field + "." + name
		if name == "" {
			where = field + `[""]`
		}
		if !validAttrName(name) {
			return nil, &Error{where, "an attribute name is 1 to 20 lowercase letters and digits"}
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, &Error{where, "want a string"}
		}
		if v == "" {
			return nil, &Error{where, "the value must not be empty"}
		}
		f.attrs = append(f.attrs, attrValue{name, v})
	}
	sort.Slice(f.attrs, func(i, j int) bool { return f.attrs[i].name < f.attrs[j].name })
	return f, nil
}

func validAttrName(n string) bool {
	if n == "" || len(n) > 20 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (f attrMatch) Match(e event.Event) bool {
	for _, a := range f.attrs {
		s, ok := Attribute(e, a.name)
		if !ok || !f.cmp(s, a.value) {
			return false
		}
	}
	return true
}

// Attribute returns the value of the context attribute name of e in its
// canonical string form, and whether e has it.
func Attribute(e event.Event, name string) (string, bool) {
	switch name {
	case "id":
		return e.ID(), true
	case "source":
		return e.Source(), true
	case "specversion":
		return e.SpecVersion(), true
	case "type":
		return e.Type(), true
	case "datacontenttype":
		return e.DataContentType(), e.DataContentType() != ""
	case "dataschema":
		return e.DataSchema(), e.DataSchema() != ""
	case "subject":
		return e.Subject(), e.Subject() != ""
	case "time":
		if e.Time().IsZero() {
			return "", false
		}
		return types.Timestamp{Time: e.Time()}.String(), true
	}
	v, ok := e.Extensions()[name]
	if !ok {
		return "", false
	}
	s, err := types.Format(v)
	return s, err == nil
}

type all []Filter

func (fs all) Match(e event.Event) bool {
	for _, f := range fs {
		if !f.Match(e) {
			return false
		}
	}
	return true
}

type anyOf []Filter

func (fs anyOf) Match(e event.Event) bool {
	for _, f := range fs {
		if f.Match(e) {
			return true
		}
	}
	return false
}

type not struct{ f Filter }

func (n not) Match(e event.Event) bool { return !n.f.Match(e) }

type sqlFilter struct{ expr cesql.Expression }

func parseSQL(body json.RawMessage, field string) (Filter, error) {
	var src string
	if err := json.Unmarshal(body, &src); err != nil {
		return nil, &Error{field, "want a CloudEvents SQL expression as a string"}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{field, "the expression is empty"}
	}
	expr, err := parseCESQL(src)
	if err != nil || expr == nil {
		reason := "the expression does not parse"
		if err != nil {
			reason += ": " + err.Error()
		}
		return nil, &Error{field, reason}
	}
	return sqlFilter{expr}, nil
}

// parseCESQL parses src with the SDK's parser, which panics on some
// incomplete expressions ("type = "): a panic is a parse error.
func parseCESQL(src string) (expr cesql.Expression, err error) {
	defer func() {
		if p := recover(); p != nil {
			expr, err = nil, fmt.Errorf("%v", p)
		}
	}()
	return cesqlparser.Parse(src)
}

// Match is true when the expression evaluates, without error, to TRUE
// (or to a string that reads as true, as CloudEvents SQL coerces it).
func (f sqlFilter) Match(e event.Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v, err := f.expr.Evaluate(e)
	if err != nil {
		return false
	}
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}
