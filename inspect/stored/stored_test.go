package stored_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/inspect/stored"
)

const sampleEvent = `{"specversion":"1.0","id":"x1","source":"/stored-test","type":"order.created","datacontenttype":"application/json","data":{"id":"x1"}}`

func sample(t *testing.T) stored.Item {
	t.Helper()
	e, err := eventkit.UnmarshalEvent([]byte(sampleEvent))
	if err != nil {
		t.Fatal(err)
	}
	// A store time in another zone: the JSON form writes it in UTC.
	return stored.Item{Position: "7", Topic: "a.b", Stored: time.Date(2026, 1, 2, 4, 4, 5, 6, time.FixedZone("CET", 3600)), Event: e}
}

// TestItemAndRawItemWriteOneJSON: the decoded item and its raw variant
// write the same JSON object, and each reads the other's.
func TestItemAndRawItemWriteOneJSON(t *testing.T) {
	it := sample(t)
	raw, err := it.Raw()
	if err != nil {
		t.Fatal(err)
	}
	a, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("Item writes\n%s\nRawItem writes\n%s", a, b)
	}
	want := `{"position":"7","topic":"a.b","stored":"2026-01-02T03:04:05.000000006Z","event":` + string(raw.Event) + `}`
	if string(a) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", a, want)
	}
	var back stored.Item
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Position != "7" || back.Topic != "a.b" || !back.Stored.Equal(it.Stored) || back.Event.ID() != "x1" || string(back.Event.Data()) != `{"id":"x1"}` {
		t.Fatalf("round trip: %+v", back)
	}
	var rawBack stored.RawItem
	if err := json.Unmarshal(a, &rawBack); err != nil {
		t.Fatal(err)
	}
	dec, err := rawBack.Decode()
	if err != nil || dec.Event.ID() != "x1" || !dec.Stored.Equal(it.Stored) {
		t.Fatalf("decoded %+v, %v", dec, err)
	}
}

// TestUnknownStoreTimeIsLeftOut: an item read from a Subscriber has no
// store time; neither variant writes one.
func TestUnknownStoreTimeIsLeftOut(t *testing.T) {
	it := sample(t)
	it.Stored = time.Time{}
	raw, err := it.Raw()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{it, raw} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["stored"]; ok || len(m) != 3 {
			t.Fatalf("%T writes %s, want position, topic and event only", v, b)
		}
	}
}

// TestUndecodableRawItem: a raw item keeps an event it cannot decode;
// Decode and reading it as an Item report it.
func TestUndecodableRawItem(t *testing.T) {
	raw := stored.RawItem{Position: "1", Topic: "t", Event: json.RawMessage(`{"id":"no-specversion"}`)}
	if _, err := raw.Decode(); err == nil {
		t.Fatal("Decode took an event without specversion")
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var it stored.Item
	if err := json.Unmarshal(b, &it); err == nil {
		t.Fatalf("Item read %s", b)
	}
}
