package nats_test

import (
	"errors"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
)

func TestBinaryModeHeaders(t *testing.T) {
	e := eventkittest.NewEvent("id-1")
	e.SetSubject("Euro € 100%")
	e.SetExtension("partitionkey", "k 1")
	m, err := eknats.EncodeMsg("orders.created", e, eknats.Binary)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce-specversion":     "1.0",
		"ce-id":              "id-1",
		"ce-source":          "https://eventkit.dev/test",
		"ce-type":            "dev.eventkit.test",
		"ce-subject":         "Euro%20%E2%82%AC%20100%25",
		"ce-partitionkey":    "k%201",
		"ce-datacontenttype": "application/json",
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(m.Header) != len(want) {
		t.Errorf("headers %v, want exactly %v", m.Header, want)
	}
	if string(m.Data) != string(e.Data()) {
		t.Errorf("payload %q, want the event's data %q", m.Data, e.Data())
	}
	got, err := eknats.DecodeMsg(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if d := eventkittest.DiffEvents(e, got); d != "" {
		t.Errorf("round trip: %s", d)
	}
}

func TestStructuredMode(t *testing.T) {
	e := eventkittest.NewEvent("id-2")
	m, err := eknats.EncodeMsg("orders.created", e, eknats.Structured)
	if err != nil {
		t.Fatal(err)
	}
	if ct := m.Header.Get("content-type"); ct != eventkit.MediaTypeCloudEvents {
		t.Fatalf("content-type %q", ct)
	}
	if m.Header.Get("ce-id") != "" {
		t.Fatalf("structured message carries ce- headers: %v", m.Header)
	}
	got, err := eknats.DecodeMsg(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if d := eventkittest.DiffEvents(e, got); d != "" {
		t.Errorf("round trip: %s", d)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]nats.Header{
		"no specversion":     {"ce-id": {"x"}, "ce-source": {"s"}, "ce-type": {"t"}},
		"missing id":         {"ce-specversion": {"1.0"}, "ce-source": {"s"}, "ce-type": {"t"}},
		"bad percent":        {"ce-specversion": {"1.0"}, "ce-id": {"%zz"}, "ce-source": {"s"}, "ce-type": {"t"}},
		"bad version":        {"ce-specversion": {"0.3"}, "ce-id": {"x"}, "ce-source": {"s"}, "ce-type": {"t"}},
		"structured garbage": {"content-type": {"application/cloudevents+json"}},
	}
	for name, h := range cases {
		if _, err := eknats.DecodeMsg(h, []byte("{")); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
	_, err := eknats.DecodeMsg(nats.Header{"ce-specversion": {"1.0"}, "ce-source": {"s"}, "ce-type": {"t"}}, nil)
	var ve *eventkit.ValidationError
	if !errors.As(err, &ve) || ve.Attribute != "id" {
		t.Errorf("missing id: got %v, want a ValidationError naming id", err)
	}
}

func FuzzDecodeMsg(f *testing.F) {
	f.Add("1.0", "id", "urn:s", "t", "application/json", []byte(`{"a":1}`))
	f.Add("1.0", "%E2%82%AC", "urn:s", "t", "", []byte{})
	f.Fuzz(func(t *testing.T, ver, id, src, typ, ct string, data []byte) {
		h := nats.Header{"ce-specversion": {ver}, "ce-id": {id}, "ce-source": {src}, "ce-type": {typ}}
		if ct != "" {
			h["ce-datacontenttype"] = []string{ct}
		}
		e, err := eknats.DecodeMsg(h, data)
		if err != nil {
			return
		}
		if err := eventkit.ValidateEvent(e); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		// A decoded event encodes and decodes to itself.
		m, err := eknats.EncodeMsg("a.b", e, eknats.Binary)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := eknats.DecodeMsg(m.Header, m.Data)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d := eventkittest.DiffEvents(e, e2); d != "" {
			t.Fatalf("re-encode changed the event: %s", d)
		}
	})
}

// A message without specversion, in neither mode, is "not a CloudEvent"
// in the words every transport shares (eventkit.ErrNotCloudEvent).
func TestDecodeNotCloudEvent(t *testing.T) {
	_, err := eknats.DecodeMsg(nats.Header{"ce-id": {"x"}, "ce-source": {"s"}, "ce-type": {"t"}}, []byte("{}"))
	if !errors.Is(err, eventkit.ErrNotCloudEvent) {
		t.Fatalf("got %v, want an error wrapping eventkit.ErrNotCloudEvent", err)
	}
}

// A structured content-type, in any case, wins over "ce-" headers
// whatever the map's order, even a malformed one: the payload is the event.
func TestDecodeStructuredWinsOverCeHeaders(t *testing.T) {
	e := eventkittest.NewEvent("id-3")
	m, err := eknats.EncodeMsg("orders.created", e, eknats.Structured)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"content-type", "Content-Type", "CONTENT-TYPE"} {
		h := nats.Header{ct: {"Application/CloudEvents+JSON; charset=utf-8"}, "ce-id": {"%zz"}, "ce-specversion": {"0.3"}, "Nats-Msg-Id": {"x"}}
		for range 20 { // map order varies from one iteration to the next
			got, err := eknats.DecodeMsg(h, m.Data)
			if err != nil {
				t.Fatalf("%s: %v", ct, err)
			}
			if d := eventkittest.DiffEvents(e, got); d != "" {
				t.Fatalf("%s: %s", ct, d)
			}
		}
	}
	h := nats.Header{"Content-Type": {"application/cloudevents-batch+json"}}
	if _, err := eknats.DecodeMsg(h, []byte("[]")); err == nil {
		t.Fatal("a batch decoded as one event")
	}
}

// Decoding a binary-mode message as a subscription receives it allocates
// the event's context and its datacontenttype, nothing more (it used to
// make the context twice, and scan the header for content-type apart).
func TestDecodeMsgAllocs(t *testing.T) {
	e := eventkittest.NewEvent("allocs-1")
	m, err := eknats.EncodeMsg("bench.x", e, eventkit.Binary)
	if err != nil {
		t.Fatal(err)
	}
	m.Header[nats.MsgIdHdr] = []string{"allocs-1"}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := eknats.DecodeMsg(m.Header, m.Data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("DecodeMsg: %.0f allocations per message, want at most 2", allocs)
	}
}
