package cefilter_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cefilter"
)

// testEvent has every kind of attribute: required, optional, a string
// and an integer extension.
func testEvent() event.Event {
	e, err := eventkit.UnmarshalEvent([]byte(`{"specversion": "1.0", "id": "id-1", "source": "/orders/eu",
		"type": "com.example.order.created", "subject": "orders/42.json", "time": "2026-12-03T10:00:00Z",
		"tenant": "acme", "priority": 7}`))
	if err != nil {
		panic(err)
	}
	return e
}

func TestMatch(t *testing.T) {
	e := testEvent()
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{`{"exact": {"type": "com.example.order.created"}}`, true},
		{`{"exact": {"type": "com.example.order"}}`, false},
		{`{"exact": {"type": "COM.EXAMPLE.ORDER.CREATED"}}`, false}, // case sensitive
		{`{"exact": {"type": "com.example.order.created", "source": "/orders/eu"}}`, true},
		{`{"exact": {"type": "com.example.order.created", "source": "/orders/us"}}`, false},
		{`{"prefix": {"type": "com.example."}}`, true},
		{`{"prefix": {"type": "org.example."}}`, false},
		{`{"suffix": {"subject": ".json"}}`, true},
		{`{"suffix": {"subject": ".xml"}}`, false},
		{`{"exact": {"tenant": "acme"}}`, true},
		{`{"exact": {"priority": "7"}}`, true},
		{`{"prefix": {"time": "2026-12-03T10:00:00"}}`, true},
		{`{"exact": {"missing": "x"}}`, false},
		{`{"prefix": {"dataschema": "x"}}`, false},
		{`{"all": [{"prefix": {"type": "com."}}, {"exact": {"tenant": "acme"}}]}`, true},
		{`{"all": [{"prefix": {"type": "com."}}, {"exact": {"tenant": "other"}}]}`, false},
		{`{"any": [{"prefix": {"type": "org."}}, {"exact": {"tenant": "acme"}}]}`, true},
		{`{"any": [{"prefix": {"type": "org."}}, {"exact": {"tenant": "other"}}]}`, false},
		{`{"not": {"exact": {"tenant": "acme"}}}`, false},
		{`{"not": {"not": {"exact": {"tenant": "acme"}}}}`, true},
		{`{"sql": "type LIKE 'com.example.%' AND tenant = 'acme'"}`, true},
		{`{"sql": "source = '/orders/us'"}`, false},
		{`{"sql": "missing = 'x'"}`, false}, // an evaluation error is false
		{`{"sql": "'true'"}`, true},
		{`{"sql": "1"}`, false},
	} {
		f, err := cefilter.Parse(json.RawMessage(tc.filter), "filter")
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.filter, err)
			continue
		}
		if got := f.Match(e); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestParseListIsAll(t *testing.T) {
	e := testEvent()
	for _, tc := range []struct {
		list string
		want bool
	}{
		{``, true},
		{`null`, true},
		{`[]`, true},
		{`[{"prefix": {"type": "com."}}, {"suffix": {"type": ".created"}}]`, true},
		{`[{"prefix": {"type": "com."}}, {"suffix": {"type": ".deleted"}}]`, false},
	} {
		f, err := cefilter.ParseList(json.RawMessage(tc.list), "filters")
		if err != nil {
			t.Fatalf("ParseList(%q): %v", tc.list, err)
		}
		if got := f.Match(e); got != tc.want {
			t.Errorf("%q: Match = %v, want %v", tc.list, got, tc.want)
		}
	}
}

func TestParseRefusesNamingTheField(t *testing.T) {
	deep := strings.Repeat(`{"not":`, cefilter.MaxDepth+2) + `{"exact":{"type":"x"}}` + strings.Repeat(`}`, cefilter.MaxDepth+2)
	for _, tc := range []struct {
		list, field, reason string
	}{
		{`{}`, "filters", "array"},
		{`[{"regex": {"type": "a.*"}}]`, "filters[0]", "unsupported dialect"},
		{`[{"exact": {"type": "a"}, "prefix": {"type": "b"}}]`, "filters[0]", "exactly one dialect"},
		{`[{}]`, "filters[0]", "exactly one dialect"},
		{`["prefix"]`, "filters[0]", "object"},
		{`[{"prefix": {"type": ""}}]`, "filters[0].prefix.type", "empty"},
		{`[{"prefix": {"": "x"}}]`, `filters[0].prefix[""]`, "attribute name"},
		{`[{"exact": {"Type": "x"}}]`, "filters[0].exact.Type", "lowercase"},
		{`[{"suffix": {"type": 3}}]`, "filters[0].suffix.type", "string"},
		{`[{"exact": {}}]`, "filters[0].exact", "at least one"},
		{`[{"exact": ["type"]}]`, "filters[0].exact", "object"},
		{`[{"all": []}]`, "filters[0].all", "at least one"},
		{`[{"any": [{"exact": {"type": "a"}}, {"bogus": 1}]}]`, "filters[0].any[1]", "unsupported dialect"},
		{`[{"not": [{"exact": {"type": "a"}}]}]`, "filters[0].not", "object"},
		{`[{"all": [{"not": {"prefix": {"type": ""}}}]}]`, "filters[0].all[0].not.prefix.type", "empty"},
		{`[{"sql": "type = "}]`, "filters[0].sql", "does not parse"},
		{`[{"sql": ""}]`, "filters[0].sql", "empty"},
		{`[{"sql": 1}]`, "filters[0].sql", "string"},
		{`[` + deep + `]`, "filters[0]", "nested deeper"},
	} {
		_, err := cefilter.ParseList(json.RawMessage(tc.list), "filters")
		var fe *cefilter.Error
		if !errors.As(err, &fe) {
			t.Errorf("ParseList(%s): error %v, want a *cefilter.Error", tc.list, err)
			continue
		}
		if !strings.HasPrefix(fe.Field, tc.field) || !strings.Contains(fe.Reason, tc.reason) {
			t.Errorf("ParseList(%s): field %q reason %q, want field %q and a reason with %q", tc.list, fe.Field, fe.Reason, tc.field, tc.reason)
		}
	}
}

func FuzzParseList(f *testing.F) {
	f.Add(`[{"prefix": {"type": "com."}}]`)
	f.Add(`[{"all": [{"not": {"exact": {"tenant": "acme"}}}, {"sql": "subject LIKE '%.json'"}]}]`)
	e := testEvent()
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := cefilter.ParseList(json.RawMessage(s), "filters")
		if err != nil {
			var fe *cefilter.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *cefilter.Error", err)
			}
			return
		}
		flt.Match(e) // must not panic
	})
}

func BenchmarkMatch(b *testing.B) {
	e := testEvent()
	for _, bc := range []struct{ name, filter string }{
		{"prefix", `{"prefix": {"type": "com.example."}}`},
		{"all3", `{"all": [{"prefix": {"type": "com."}}, {"exact": {"tenant": "acme"}}, {"not": {"suffix": {"subject": ".tmp"}}}]}`},
		{"sql", `{"sql": "type LIKE 'com.example.%' AND tenant = 'acme'"}`},
	} {
		f, err := cefilter.Parse(json.RawMessage(bc.filter), "filter")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if !f.Match(e) {
					b.Fatal("no match")
				}
			}
		})
	}
}
