package eventkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

type order struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
}

func msgWith(ct string, data []byte) *eventkit.Message {
	e := event.New()
	e.SetID("1")
	e.SetSource("s")
	e.SetType("t")
	if ct != "" {
		e.SetDataContentType(ct)
	}
	e.DataEncoded = data
	return eventkit.NewMessage("t", e, 1, nil, nil)
}

func TestTypedDecodes(t *testing.T) {
	var got order
	h := eventkit.Typed(func(ctx context.Context, m *eventkit.Message, o order) error { got = o; return nil })
	for _, ct := range []string{"", "application/json", "application/vnd.orders+json; charset=utf-8", "text/json"} {
		got = order{}
		if err := h.Handle(context.Background(), msgWith(ct, []byte(`{"id":"o1","amount":2.5}`))); err != nil {
			t.Fatalf("%q: %v", ct, err)
		}
		if got != (order{ID: "o1", Amount: 2.5}) {
			t.Fatalf("%q: got %+v", ct, got)
		}
	}
}

func TestTypedRejectsUndecodable(t *testing.T) {
	h := eventkit.Typed(func(ctx context.Context, m *eventkit.Message, o order) error {
		t.Fatal("handler called with undecodable data")
		return nil
	})
	for name, m := range map[string]*eventkit.Message{
		"bad json":   msgWith("application/json", []byte(`{"id":`)),
		"wrong type": msgWith("application/json", []byte(`{"amount":"lots"}`)),
		"not json":   msgWith("application/xml", []byte(`<order/>`)),
		"no data":    msgWith("application/json", nil),
	} {
		err := h.Handle(context.Background(), m)
		var de *eventkit.DecodeError
		if !errors.As(err, &de) || !eventkit.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent *DecodeError", name, err)
			continue
		}
		if de.Type != "t" || de.Target == "" {
			t.Errorf("%s: error lacks detail: %v", name, err)
		}
	}
}

func TestTypedRawTypes(t *testing.T) {
	var s string
	var b []byte
	hs := eventkit.Typed(func(ctx context.Context, m *eventkit.Message, v string) error { s = v; return nil })
	hb := eventkit.Typed(func(ctx context.Context, m *eventkit.Message, v []byte) error { b = v; return nil })
	m := msgWith("application/xml", []byte(`<order/>`))
	if err := hs.Handle(context.Background(), m); err != nil || s != "<order/>" {
		t.Fatalf("string: %q, %v", s, err)
	}
	if err := hb.Handle(context.Background(), m); err != nil || string(b) != "<order/>" {
		t.Fatalf("[]byte: %q, %v", b, err)
	}
	if err := hs.Handle(context.Background(), msgWith("application/json", []byte(`"quoted"`))); err != nil || s != "quoted" {
		t.Fatalf("JSON string: %q, %v", s, err)
	}
}

func TestMessageSettlesOnce(t *testing.T) {
	m := msgWith("", nil)
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(); err != nil {
		t.Fatalf("second Ack: %v", err)
	}
	if err := m.Nack(errors.New("x")); !errors.Is(err, eventkit.ErrAlreadySettled) {
		t.Fatalf("Nack after Ack = %v", err)
	}
}

func TestValidateEvent(t *testing.T) {
	ok := event.New()
	ok.SetID("1")
	ok.SetSource("urn:x")
	ok.SetType("t")
	if err := eventkit.ValidateEvent(ok); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(e *event.Event){
		"datacontenttype": func(e *event.Event) { e.SetDataContentType("xyz") },
		"dataschema":      func(e *event.Event) { e.SetDataSchema("relative/path") },
		"subject":         func(e *event.Event) { s := " "; e.Context.(*event.EventContextV1).Subject = &s },
		"id":              func(e *event.Event) { e.SetID("  ") },
		"data":            func(e *event.Event) { e.Context.(*event.EventContextV1).Extensions = map[string]any{"data": "x"} },
	}
	for attr, mutate := range cases {
		e := ok.Clone()
		mutate(&e)
		err := eventkit.ValidateEvent(e)
		var ve *eventkit.ValidationError
		if !errors.As(err, &ve) || ve.Attribute != attr {
			t.Errorf("bad %s: got %v", attr, err)
		}
	}
}
