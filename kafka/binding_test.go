package kafka_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

func header(r *kgo.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestBinaryMode(t *testing.T) {
	ev := eventkittest.NewEvent("b-1")
	ev.SetSubject("subj ü")
	ev.SetExtension("partitionkey", "order-7")
	ev.SetExtension("extint", 42)
	r, err := kafka.Encode("orders.created", ev, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "order-7" {
		t.Errorf("key = %q, want the partitionkey extension", r.Key)
	}
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "b-1", "ce_source": "https://eventkit.dev/test",
		"ce_type": "dev.eventkit.test", "ce_subject": "subj ü", "ce_partitionkey": "order-7",
		"ce_extint": "42", "content-type": "application/json",
	}
	for k, v := range want {
		if got, ok := header(r, k); !ok || got != v {
			t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := header(r, "ce_datacontenttype"); ok {
		t.Errorf("binary mode carries datacontenttype in content-type, not ce_datacontenttype")
	}
	if !bytes.Equal(r.Value, ev.Data()) {
		t.Errorf("value = %q, want the data", r.Value)
	}
	back, err := kafka.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := eventkittest.DiffEvents(ev, back); d != "" {
		t.Errorf("round trip: %s", d)
	}
}

func TestKeyFallsBackToSubject(t *testing.T) {
	ev := eventkittest.NewEvent("s-1")
	ev.SetSubject("customer-9")
	r, _ := kafka.Encode("t", ev, false)
	if string(r.Key) != "customer-9" {
		t.Errorf("key = %q, want the subject", r.Key)
	}
	r, _ = kafka.Encode("t", eventkittest.NewEvent("n-1"), false)
	if r.Key != nil {
		t.Errorf("key = %q, want nil without partitionkey and subject", r.Key)
	}
}

// An event without data is a record with an empty value, not a null one:
// a null value is a tombstone (compaction deletes its key; the Java SDK's
// deserializer reads no event). TestInteropJava found it.
func TestNoDataIsNoTombstone(t *testing.T) {
	ev := eventkittest.NewEvent("nd-1")
	_ = ev.SetData("", nil)
	ev.SetDataContentType("")
	r, err := kafka.Encode("t", ev, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Value == nil || len(r.Value) != 0 {
		t.Errorf("value = %#v, want empty and not nil", r.Value)
	}
	back, err := kafka.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if back.Data() != nil {
		t.Errorf("decoded data = %q, want none", back.Data())
	}
}

func TestStructuredMode(t *testing.T) {
	ev := eventkittest.NewEvent("st-1")
	ev.SetExtension("partitionkey", "k")
	r, err := kafka.Encode("t", ev, true)
	if err != nil {
		t.Fatal(err)
	}
	if ct, _ := header(r, "content-type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Errorf("content-type = %q", ct)
	}
	if string(r.Key) != "k" {
		t.Errorf("key = %q", r.Key)
	}
	back, err := kafka.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := eventkittest.DiffEvents(ev, back); d != "" {
		t.Errorf("round trip: %s", d)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]*kgo.Record{
		"no headers":     {Value: []byte("x")},
		"no specversion": {Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("1")}}},
		"bad time": {Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("1")},
			{Key: "ce_source", Value: []byte("s")}, {Key: "ce_type", Value: []byte("t")}, {Key: "ce_time", Value: []byte("yesterday")}}},
		"missing type": {Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("1")},
			{Key: "ce_source", Value: []byte("s")}}},
		"bad name":       {Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_Bad", Value: []byte("1")}}},
		"bad structured": {Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}, Value: []byte("{")},
	}
	for name, r := range cases {
		if _, err := kafka.Decode(r); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	_, err := kafka.Decode(&kgo.Record{Value: []byte("plain")})
	if !errors.Is(err, kafka.ErrNotCloudEvent) {
		t.Errorf("plain record: %v, want ErrNotCloudEvent", err)
	}
	var ve *eventkit.ValidationError
	if _, err := kafka.Decode(cases["missing type"]); !errors.As(err, &ve) || ve.Attribute != "type" {
		t.Errorf("missing type: %v", err)
	}
}

func TestPrefixMapper(t *testing.T) {
	m := kafka.PrefixMapper("prod.")
	k, err := m.ToKafka("orders.eu-1.created")
	if err != nil || k != "prod.orders.eu-1.created" {
		t.Fatalf("ToKafka = %q, %v", k, err)
	}
	if name, ok := m.FromKafka("prod.orders.eu-1.created"); !ok || name != "orders.eu-1.created" {
		t.Errorf("FromKafka = %q, %v", name, ok)
	}
	if _, ok := m.FromKafka("other.orders"); ok {
		t.Errorf("FromKafka accepted a topic outside the prefix")
	}
	if _, err := m.ToKafka("orders:eu"); err == nil {
		t.Errorf("ToKafka accepted ':' which Kafka topic names do not allow")
	}
	re := m.Regexp("orders.*.created")
	for name, want := range map[string]bool{"prod.orders.eu.created": true, "prod.orders.eu.x.created": false, "orders.eu.created": false, "prodXorders.eu.created": false} {
		if got := regexpMatch(re, name); got != want {
			t.Errorf("regexp %s on %s = %v, want %v", re, name, got, want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	ev := eventkittest.NewEvent("bench-1")
	ev.SetExtension("partitionkey", "k")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kafka.Encode("t", ev, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	ev := eventkittest.NewEvent("bench-1")
	ev.SetExtension("partitionkey", "k")
	r, _ := kafka.Encode("t", ev, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kafka.Decode(r); err != nil {
			b.Fatal(err)
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestDecodeValidatesEveryRecord: decoding checks most records' ids only,
// when their other attributes are those of the last valid record; an
// invalid record is still refused wherever it comes in a stream, and a
// valid one accepted.
func TestDecodeValidatesEveryRecord(t *testing.T) {
	rec := func(id, source, typ, ct string) *kgo.Record {
		r := &kgo.Record{Topic: "t", Value: []byte("{}"), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)},
			{Key: "ce_source", Value: []byte(source)}, {Key: "ce_type", Value: []byte(typ)},
		}}
		if ct != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
		}
		return r
	}
	for i, c := range []struct {
		r     *kgo.Record
		field string // "" when valid
	}{
		{rec("a-1", "urn:s", "t.x", "application/json"), ""},
		{rec("a-2", "urn:s", "t.x", "application/json"), ""},
		{rec("a\x00", "urn:s", "t.x", "application/json"), "id"},
		{rec("", "urn:s", "t.x", "application/json"), "id"},
		{rec(" ", "urn:s", "t.x", "application/json"), "id"},
		{rec("a\xff", "urn:s", "t.x", "application/json"), "id"},
		{rec("a b é", "urn:s", "t.x", "application/json"), ""},
		{rec("a-3", "urn:s", "t\x01x", "application/json"), "type"},
		{rec("a-4", "urn:s", "t.x", "application/json"), ""},
		{rec("a-5", "urn:s", "t.x", "json"), "datacontenttype"},
		{rec("a-6", "urn:s", "t.x", "application/json"), ""},
		{rec("a-7", "", "t.x", "application/json"), "source"},
		{rec("a-8", "urn:s\x7f", "t.x", "application/json"), "source"},
		{rec("a-9", "urn:s", "t.x", ""), ""},
		{rec("a\x1b", "urn:s", "t.x", ""), "id"},
		{rec("a-10", "urn:s", "", ""), "type"},
	} {
		_, err := kafka.Decode(c.r)
		var ve *eventkit.ValidationError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("record %d: %v, want valid", i, err)
		case c.field != "" && (!errors.As(err, &ve) || ve.Attribute != c.field):
			t.Errorf("record %d: %v, want a ValidationError of %s", i, err, c.field)
		}
	}
}
