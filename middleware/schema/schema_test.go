package schema_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/schema"
)

const orderSchema = `{
  "type": "object",
  "required": ["order", "amount"],
  "properties": {"order": {"type": "string"}, "amount": {"type": "number", "minimum": 0}}
}`

const orderSchemaV2 = `{"type": "object", "required": ["orderId"]}`

func TestSchemaValidationInvalidGoesStraightToDeadLetter(t *testing.T) {
	h := mwtest.NewHarness(t)
	validate, err := schema.Middleware(schema.ForType("dev.eventkit.order", []byte(orderSchema)))
	if err != nil {
		t.Fatal(err)
	}
	dlq := h.Subscribe(h.Topic("orders.dlq"))
	handled := make(chan string, 4)
	var calls atomic.Int32
	h.Router.Use(middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(mwtest.QuietLogger)), validate,
		middleware.Retry(middleware.Backoff(time.Millisecond, time.Millisecond, 1)))
	if err := h.Router.HandleFunc(h.Topic("orders"), func(ctx context.Context, m *eventkit.Message) error {
		calls.Add(1)
		mwtest.Send(ctx, handled, m.Event.ID())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.Start()
	bad, good := mwtest.NewEvent("bad"), mwtest.NewEvent("good")
	bad.SetType("dev.eventkit.order")
	good.SetType("dev.eventkit.order")
	_ = bad.SetData("application/json", []byte(`{"order":"o-1","amount":-3}`))
	_ = good.SetData("application/json", []byte(`{"order":"o-2","amount":3}`))
	h.Publish(h.Topic("orders"), bad, good)
	m := mwtest.Receive(t, dlq)
	if m.Event.ID() != "bad" || m.Event.Extensions()[middleware.ExtDLQAttempts] != int32(1) {
		t.Fatalf("dead letter %q with attempts %v; want bad after 1 attempt", m.Event.ID(), m.Event.Extensions()[middleware.ExtDLQAttempts])
	}
	if id := mwtest.Wait(t, handled, "the valid event"); id != "good" {
		t.Fatalf("handled %q; want only good", id)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", calls.Load())
	}
}

func TestSchemaValidationRules(t *testing.T) {
	validate, err := schema.Middleware(
		schema.ForType("dev.eventkit.order", []byte(orderSchema)),
		schema.ForURL("https://schemas.example.com/order/v2.json", []byte(orderSchemaV2)))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	h := validate(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return nil }))
	run := func(typ, dataschema, ct, data string) error {
		e := mwtest.NewEvent("e")
		e.SetType(typ)
		if dataschema != "" {
			e.SetDataSchema(dataschema)
		}
		if data != "" {
			_ = e.SetData(ct, []byte(data))
		} else {
			e.DataEncoded = nil
		}
		return h.Handle(context.Background(), eventkit.NewMessage("t", e, 1, nil, nil))
	}
	cases := []struct {
		name, typ, ds, ct, data string
		ok                      bool
	}{
		{"valid by type", "dev.eventkit.order", "", "application/json", `{"order":"o","amount":1}`, true},
		{"invalid by type", "dev.eventkit.order", "", "application/json", `{"order":"o"}`, false},
		{"dataschema wins over type", "dev.eventkit.order", "https://schemas.example.com/order/v2.json", "application/json", `{"orderId":"o"}`, true},
		{"invalid by dataschema", "dev.eventkit.order", "https://schemas.example.com/order/v2.json", "application/json", `{"order":"o","amount":1}`, false},
		{"unknown dataschema falls back to type", "dev.eventkit.order", "https://schemas.example.com/other.json", "application/json", `{"order":"o"}`, false},
		{"no schema passes", "dev.eventkit.other", "", "application/json", `{}`, true},
		{"malformed JSON", "dev.eventkit.order", "", "application/json", `{"order":`, false},
		{"not JSON", "dev.eventkit.order", "", "text/plain", `hello`, false},
		{"no data", "dev.eventkit.order", "", "", "", false},
	}
	for _, c := range cases {
		calls = 0
		err := run(c.typ, c.ds, c.ct, c.data)
		if c.ok {
			if err != nil || calls != 1 {
				t.Errorf("%s: err = %v, calls = %d; want handled", c.name, err, calls)
			}
			continue
		}
		var se *schema.Error
		if !errors.As(err, &se) || !middleware.IsPermanent(err) || calls != 0 {
			t.Errorf("%s: err = %v, calls = %d; want a permanent *SchemaError and no handling", c.name, err, calls)
		}
	}

	strict, err := schema.Middleware(schema.Require())
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil })).Handle(
		context.Background(), eventkit.NewMessage("t", mwtest.NewEvent("e"), 1, nil, nil)); !middleware.IsPermanent(err) {
		t.Errorf("RequireSchema with no schema: err = %v; want permanent", err)
	}
	if _, err := schema.Middleware(schema.ForType("x", []byte(`{"type": 12}`))); err == nil {
		t.Error("an invalid schema compiled")
	}
	if _, err := schema.Middleware(schema.ForType("x", []byte(`{`))); err == nil {
		t.Error("a malformed schema was accepted")
	}
}
