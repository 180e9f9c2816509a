package kafka

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The records of one publish call share the arena's chunks; each record
// must still own its headers and key: appending to one piece never writes
// over the next, and every record decodes back to its own event.
func TestArenaRecordsAreIndependent(t *testing.T) {
	evs := make([]event.Event, 300) // more than one chunk of bytes and headers
	for i := range evs {
		e := eventkittest.NewEvent("a-" + strconv.Itoa(i))
		switch i % 3 {
		case 1:
			e.SetSubject("subject-" + strconv.Itoa(i))
			e.SetTime(time.Date(2026, 11, 22, 10, 0, i%60, 0, time.UTC))
		case 2:
			e.SetExtension("partitionkey", "key-"+strconv.Itoa(i))
			e.SetExtension("extint", i)
			e.SetDataSchema("https://eventkit.dev/schema.json")
		}
		evs[i] = e
	}
	recs := make([]kgo.Record, len(evs))
	a := arena{left: len(evs)}
	for i := range evs {
		if err := a.encode(&recs[i], "t", evs[i], false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range recs {
		r := &recs[i]
		if cap(r.Key) != len(r.Key) {
			t.Fatalf("record %d: key has spare capacity %d", i, cap(r.Key)-len(r.Key))
		}
		if cap(r.Headers) != len(r.Headers) {
			t.Fatalf("record %d: headers have spare capacity %d", i, cap(r.Headers)-len(r.Headers))
		}
		for _, h := range r.Headers {
			if cap(h.Value) != len(h.Value) {
				t.Fatalf("record %d: header %s has spare capacity", i, h.Key)
			}
		}
	}
	// Scribble over every piece through appends; the neighbours must not move.
	for i := range recs {
		r := &recs[i]
		_ = append(r.Key, "XXXX"...)
		for _, h := range r.Headers {
			_ = append(h.Value, "XXXX"...)
		}
		_ = append(r.Headers, kgo.RecordHeader{Key: "x"})
	}
	for i := range recs {
		back, err := Decode(&recs[i])
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if d := eventkittest.DiffEvents(evs[i], back); d != "" {
			t.Fatalf("record %d: %s", i, d)
		}
		if want := eventkit.EventKey(evs[i]); string(recs[i].Key) != want {
			t.Fatalf("record %d: key %q, want %q", i, recs[i].Key, want)
		}
	}
}

func TestIsCloudEventsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/cloudevents+json":                    true,
		"Application/CloudEvents+JSON; charset=UTF-8":     true,
		"  application/cloudevents+json ;charset=utf-8":   true,
		"application/cloudevents-batch+json":              false,
		"application/json":                                false,
		"application/cloudevent\u017f+json":               false, // ſ folds to s in Unicode, not here
		"application/cloudevents+jsonx":                   false,
		"":                                                false,
		"application/cloudevents+json\x00; charset=UTF-8": false,
	} {
		if got := isCloudEventsJSON([]byte(ct)); got != want {
			t.Errorf("isCloudEventsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

// Decode reads outside bytes: it must never panic, and what it accepts
// must survive a round trip through Encode.
func FuzzDecode(f *testing.F) {
	f.Add("application/json", "1.0", "id-1", "urn:x", "t", "partitionkey", "k", []byte(`{"a":1}`))
	f.Add("application/cloudevents+json; charset=UTF-8", "1.0", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t"}`))
	f.Add("", "1.0", "id", "%zz", "t", "Bad", "v", []byte(nil))
	f.Fuzz(func(t *testing.T, ct, sv, id, source, typ, ext, extVal string, value []byte) {
		r := &kgo.Record{Topic: "t", Value: value, Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte(sv)}, {Key: "ce_id", Value: []byte(id)},
			{Key: "ce_source", Value: []byte(source)}, {Key: "ce_type", Value: []byte(typ)},
			{Key: HeaderPrefix + ext, Value: []byte(extVal)}, {Key: HeaderContentType, Value: []byte(ct)},
		}}
		e, err := Decode(r)
		if err != nil {
			return
		}
		r2, err := Encode("t", e, false)
		if err != nil {
			t.Fatalf("encode of a decoded event: %v", err)
		}
		back, err := Decode(r2)
		if err != nil {
			t.Fatalf("decode of a re-encoded event: %v", err)
		}
		if d := eventkittest.DiffEvents(e, back); d != "" {
			t.Fatalf("round trip: %s", d)
		}
	})
}

// TestSlabsAreSmallObjects: a consumed batch is decoded into slabs of
// entries and data buffers that stay small objects (at most 32 KiB), and
// every entry still gets its own event, data and position when the batch
// spans several slabs and one record's data is larger than a slab.
func TestSlabsAreSmallObjects(t *testing.T) {
	if size := unsafe.Sizeof(entry{}) * slabEntries; size > 32<<10 {
		t.Fatalf("a slab of %d entries takes %d bytes, more than 32 KiB", slabEntries, size)
	}
	recs := make([]*kgo.Record, 300)
	for i := range recs {
		e := eventkittest.NewEvent("s-" + strconv.Itoa(i))
		e.DataEncoded = []byte(strings.Repeat(strconv.Itoa(i%10), 200))
		if i == 150 {
			e.DataEncoded = []byte(strings.Repeat("x", 40<<10))
		}
		r, err := Encode("t", e, false)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition, r.Offset = 3, int64(1000+i)
		recs[i] = r
	}
	parts := []fetchedPart{{recs: recs, topic: mapped{"t", true}}}
	s := &subscription{}
	for i := 0; len(parts) > 0; {
		for _, e := range s.decodeBatch(nextBatch(&parts, 256)) {
			want := strings.Repeat(strconv.Itoa(i%10), 200)
			if i == 150 {
				want = strings.Repeat("x", 40<<10)
			}
			if e.bad || e.dm.Event.ID() != "s-"+strconv.Itoa(i) || string(e.dm.Event.Data()) != want || e.dm.Position != "3:"+strconv.Itoa(1000+i) {
				t.Fatalf("entry %d: bad=%v id=%q position=%q data %d bytes", i, e.bad, e.dm.Event.ID(), e.dm.Position, len(e.dm.Event.Data()))
			}
			i++
		}
	}
}

// BenchmarkDecodeBatch decodes batches of 256 binary-mode records of 256
// bytes of data as a subscription does (nextBatch, decodeBatch), without a
// broker: the consuming cost that is the kafka package's own.
func BenchmarkDecodeBatch(b *testing.B) {
	e := eventkittest.NewEvent("123456")
	e.DataEncoded = make([]byte, 256)
	r, err := Encode("t", e, false)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, 256)
	s := &subscription{}
	b.ReportAllocs()
	c0 := testkit.CPUTime()
	for b.Loop() {
		for i := range recs {
			recs[i] = r
		}
		parts := []fetchedPart{{recs: recs, topic: mapped{"t", true}}}
		s.decodeBatch(nextBatch(&parts, len(recs)))
	}
	b.ReportMetric(float64(testkit.CPUTime()-c0)/float64(b.N*len(recs)), "cpu-ns/event")
}
