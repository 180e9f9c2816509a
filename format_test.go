package eventkit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

const vectors = "testdata/cloudevents-conformance/json"

type vectorFile struct {
	TestType string `json:"testType"`
	Tests    []struct {
		ID                        string            `json:"id"`
		SampleID                  string            `json:"sampleId"`
		TestType                  string            `json:"testType"`
		Event                     json.RawMessage   `json:"event"`
		Batch                     []json.RawMessage `json:"batch"`
		SampleExtensionAttributes bool              `json:"sampleExtensionAttributes"`
		ExtensionConstraints      bool              `json:"extensionConstraints"`
	} `json:"tests"`
}

// samples are the golden events the conformance vectors name (sampleId).
func samples() map[string]event.Event {
	base := func(id string) event.Event {
		e := event.New()
		e.SetID(id)
		e.SetType("io.cloudevents.test")
		e.SetSource("https://cloudevents.io")
		return e
	}
	minimal := base("minimal")
	withTime := base("minimalWithTime")
	withTime.SetTime(time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC))
	rel := base("minimalWithRelativeSource")
	rel.SetSource("#fragment")
	allCore := base("allCore")
	allCore.SetDataContentType("text/plain")
	allCore.SetDataSchema("https://cloudevents.io/dataschema")
	allCore.SetSubject("tests")
	allCore.SetTime(time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC))
	text := base("simpleTextData")
	_ = text.SetData("text/plain", []byte("Simple text"))
	ext := base("allExtensionTypes")
	ext.SetExtension("extinteger", 10)
	ext.SetExtension("extboolean", true)
	ext.SetExtension("extstring", "text")
	ext.SetExtension("exturi", "https://cloudevents.io")
	ext.SetExtension("exturiref", "//authority/path")
	ext.SetExtension("exttimestamp", "2023-03-31T15:12:00Z")
	ext.SetExtension("extbinary", "TWE=")
	return map[string]event.Event{
		"minimal": minimal, "minimalWithTime": withTime, "minimalWithRelativeSource": rel,
		"allCore": allCore, "simpleTextData": text, "allExtensionTypes": ext,
	}
}

func batchSamples(s map[string]event.Event) map[string][]event.Event {
	return map[string][]event.Event{
		"empty":                       {},
		"minimal":                     {s["minimal"]},
		"minimal2":                    {s["minimal"], s["minimal"]},
		"minimalAndAllCore":           {s["minimal"], s["allCore"]},
		"minimalAndAllExtensionTypes": {s["minimal"], s["allExtensionTypes"]},
	}
}

func loadVectors(t *testing.T) map[string]vectorFile {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectors, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("conformance vectors not found under %s (testdata/cloudevents-conformance in the repository): %v", vectors, err)
	}
	out := map[string]vectorFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vf vectorFile
		if err := json.Unmarshal(b, &vf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = vf
	}
	return out
}

// TestConformanceVectors runs every case of the CloudEvents JSON format
// conformance files: valid events and batches decode to the golden sample
// and survive a round trip; invalid ones are rejected.
func TestConformanceVectors(t *testing.T) {
	golden := samples()
	goldenBatches := batchSamples(golden)
	ran := 0
	for file, vf := range loadVectors(t) {
		for _, tc := range vf.Tests {
			typ := tc.TestType
			if typ == "" {
				typ = vf.TestType
			}
			t.Run(file+"/"+tc.ID, func(t *testing.T) {
				ran++
				switch typ {
				case "ValidSingleEvent":
					got, err := eventkit.UnmarshalEvent(tc.Event)
					if err != nil {
						t.Fatalf("valid event rejected: %v", err)
					}
					want := golden[tc.SampleID]
					if d := eventkittest.DiffEvents(want, got); d != "" {
						t.Fatalf("decoded event differs from sample %q: %s", tc.SampleID, d)
					}
					roundTrip(t, got)
				case "ValidBatch":
					b, _ := json.Marshal(tc.Batch)
					got, err := eventkit.UnmarshalBatch(b)
					if err != nil {
						t.Fatalf("valid batch rejected: %v", err)
					}
					want := goldenBatches[tc.SampleID]
					if len(got) != len(want) {
						t.Fatalf("batch has %d events, want %d", len(got), len(want))
					}
					for i := range want {
						if d := eventkittest.DiffEvents(want[i], got[i]); d != "" {
							t.Fatalf("event %d: %s", i, d)
						}
					}
					enc, err := eventkit.MarshalBatch(got)
					if err != nil {
						t.Fatal(err)
					}
					again, err := eventkit.UnmarshalBatch(enc)
					if err != nil || len(again) != len(got) {
						t.Fatalf("batch round trip: %v", err)
					}
				case "InvalidSingleEvent":
					if e, err := eventkit.UnmarshalEvent(tc.Event); err == nil {
						t.Fatalf("invalid event accepted: %v", e)
					} else {
						t.Logf("rejected: %v", err)
					}
				case "InvalidBatch":
					b, _ := json.Marshal(tc.Batch)
					if _, err := eventkit.UnmarshalBatch(b); err == nil {
						t.Fatalf("invalid batch accepted")
					} else {
						t.Logf("rejected: %v", err)
					}
				default:
					t.Fatalf("unknown test type %q", typ)
				}
			})
		}
	}
	if ran < 40 {
		t.Fatalf("ran only %d conformance cases", ran)
	}
}

func roundTrip(t *testing.T, e event.Event) {
	t.Helper()
	if err := eventkit.ValidateEvent(e); err != nil {
		t.Fatalf("decoded event fails ValidateEvent: %v", err)
	}
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	again, err := eventkit.UnmarshalEvent(b)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b, err)
	}
	if d := eventkittest.DiffEvents(e, again); d != "" {
		t.Fatalf("round trip changed the event: %s (json %s)", d, b)
	}
}

func TestUnmarshalNamesAttribute(t *testing.T) {
	cases := map[string]string{
		`{"specversion":"1.0","id":"x","type":"t","source":"s","time":"lunchtime"}`:        "time",
		`{"specversion":"1.0","id":25,"type":"t","source":"s"}`:                            "id",
		`{"specversion":"1.0","id":"x","type":"t","source":"s","MyExt":"v"}`:               "MyExt",
		`{"specversion":"1.0","id":"x","type":"t","source":"s","ext":1.5}`:                 "ext",
		`{"specversion":"1.0","id":"x","type":"t","source":"s","datacontenttype":"xyz"}`:   "datacontenttype",
		`{"specversion":"1.0","id":"x","type":"t","source":"s","dataschema":"rel/path"}`:   "dataschema",
		`{"specversion":"1.0","id":"x","type":"t","source":"s","data":1,"data_base64":""}`: "data_base64",
		`{"specversion":"0.3","id":"x","type":"t","source":"s"}`:                           "specversion",
	}
	for in, attr := range cases {
		_, err := eventkit.UnmarshalEvent([]byte(in))
		var ve *eventkit.ValidationError
		if !errors.As(err, &ve) || ve.Attribute != attr {
			t.Errorf("UnmarshalEvent(%s) = %v, want an error naming %q", in, err, attr)
		}
	}
	for _, in := range []string{``, `[]`, `"x"`, `{"specversion":"1.0"} {}`, `{`} {
		if _, err := eventkit.UnmarshalEvent([]byte(in)); err == nil {
			t.Errorf("UnmarshalEvent(%q) accepted", in)
		}
	}
}

func TestUnmarshalData(t *testing.T) {
	e, err := eventkit.UnmarshalEvent([]byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","datacontenttype":"application/json","data":{"a": [1, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Data()) != `{"a": [1, 2]}` {
		t.Fatalf("data = %s", e.Data())
	}
	e, err = eventkit.UnmarshalEvent([]byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","data_base64":"AAEC"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Data()) != "\x00\x01\x02" {
		t.Fatalf("data_base64 decoded to %q", e.Data())
	}
}

func TestMarshalKeepsData(t *testing.T) {
	cases := []struct{ ct, data string }{
		{"application/vnd.orders+json", `{"a": 1}`},
		{"application/json", `"just a string"`},
		{"application/json", `not json`},
		{"text/plain", "hello \"world\" ü"},
		{"application/octet-stream", "\x00\xff binary"},
		{"", `{"no":"content type"}`},
		{"", "raw bytes, no content type"},
	}
	for _, c := range cases {
		e := event.New()
		e.SetID("1")
		e.SetSource("urn:x")
		e.SetType("t")
		if c.ct != "" {
			e.SetDataContentType(c.ct)
		}
		e.DataEncoded = []byte(c.data)
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := eventkit.UnmarshalEvent(b)
		if err != nil {
			t.Fatalf("%q %q: %v (json %s)", c.ct, c.data, err, b)
		}
		if string(got.Data()) != c.data {
			t.Errorf("%q: data %q came back as %q (json %s)", c.ct, c.data, got.Data(), b)
		}
	}
	// JSON data is a JSON value: whitespace around it is not part of it and
	// does not come back (MarshalEvent's doc says so); inside, it stays.
	e := event.New()
	e.SetID("1")
	e.SetSource("urn:x")
	e.SetType("t")
	e.SetDataContentType("application/json")
	e.DataEncoded = []byte(" \n{\"a\": 1}\n")
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := eventkit.UnmarshalEvent(b); err != nil || string(got.Data()) != `{"a": 1}` {
		t.Errorf("JSON data with whitespace around it came back as %q, %v (json %s), want the value alone", got.Data(), err, b)
	}
	for _, in := range []string{`{"specversion":"1.0","id":"x","type":"t","source":"s"} trailing`, `{"specversion":"1.0","id":"x","type":"t","source":"s"}{}`} {
		if _, err := eventkit.UnmarshalEvent([]byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func FuzzUnmarshalBatch(f *testing.F) {
	f.Add([]byte(`[{"specversion":"1.0","id":"x","type":"t","source":"s","data":{"a":1}},{"specversion":"1.0","id":"y","type":"t","source":"s"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := eventkit.UnmarshalBatch(b)
		if err != nil {
			return
		}
		enc, err := eventkit.MarshalBatch(evs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := eventkit.UnmarshalBatch(enc)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		for i := range evs {
			if d := eventkittest.DiffEvents(evs[i], again[i]); d != "" {
				t.Fatalf("event %d: %s", i, d)
			}
		}
	})
}

func FuzzUnmarshalEvent(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","data":{"a":1}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","data_base64":"AAEC","ext":true}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"t","source":"s","datacontenttype":"text/plain","data":"hi"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := eventkit.UnmarshalEvent(b)
		if err != nil {
			return
		}
		if verr := eventkit.ValidateEvent(e); verr != nil {
			t.Fatalf("decoded event fails validation: %v\ninput %q", verr, b)
		}
		enc, err := eventkit.MarshalEvent(e)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := eventkit.UnmarshalEvent(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v (input %q)", enc, err, b)
		}
		if d := eventkittest.DiffEvents(e, again); d != "" {
			t.Fatalf("round trip: %s\ninput %q\nencoded %s", d, b, enc)
		}
	})
}

// BenchmarkUnmarshalBatch decodes a batch of 500 events with 256-byte JSON
// data, as the HTTP ingress does.
func BenchmarkUnmarshalBatch(b *testing.B) {
	var parts []string
	for i := 0; i < 500; i++ {
		parts = append(parts, fmt.Sprintf(`{"specversion":"1.0","id":"id-%d","source":"urn:bench","type":"orders.created","datacontenttype":"application/json","time":"2026-11-22T10:00:00Z","partitionkey":"k%d","data":{"order":"o-%d","note":"%s"}}`, i, i%10, i, strings.Repeat("x", 220)))
	}
	body := []byte("[" + strings.Join(parts, ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, err := eventkit.UnmarshalBatch(body)
		if err != nil || len(evs) != 500 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}
