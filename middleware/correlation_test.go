package middleware_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
)

func TestCorrelationAcrossHandlers(t *testing.T) {
	h := newHarness(t)
	pub := middleware.CorrelationPublisher(h.Bus)
	h.Router.Use(middleware.Correlation())
	if err := h.Router.HandleFunc(h.Topic("a"), func(ctx context.Context, m *eventkit.Message) error {
		return pub.Publish(ctx, h.Topic("b"), newEvent("b-of-"+m.Event.ID()))
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.Router.HandleFunc(h.Topic("b"), func(ctx context.Context, m *eventkit.Message) error {
		preset := newEvent("c-preset")
		preset.SetExtension(middleware.ExtCorrelationID, "mine")
		return pub.Publish(ctx, h.Topic("c"), newEvent("c-of-"+m.Event.ID()), preset)
	}); err != nil {
		t.Fatal(err)
	}
	sb, sc := h.Subscribe(h.Topic("b")), h.Subscribe(h.Topic("c"))
	h.Start()
	root := newEvent("root")
	if err := pub.Publish(context.Background(), h.Topic("a"), root); err != nil { // no handled message: unchanged
		t.Fatal(err)
	}
	b := receive(t, sb).Event
	c := receive(t, sc).Event
	preset := receive(t, sc).Event
	ext := func(e interface{ Extensions() map[string]any }, k string) any { return e.Extensions()[k] }
	if got := ext(b, middleware.ExtCorrelationID); got != "root" {
		t.Errorf("b correlationid = %v, want root (the root's id)", got)
	}
	if got := ext(b, middleware.ExtCausationID); got != "root" {
		t.Errorf("b causationid = %v, want root", got)
	}
	if got := ext(c, middleware.ExtCorrelationID); got != "root" {
		t.Errorf("c correlationid = %v, want root (carried along the flow)", got)
	}
	if got := ext(c, middleware.ExtCausationID); got != "b-of-root" {
		t.Errorf("c causationid = %v, want b-of-root", got)
	}
	if got := ext(preset, middleware.ExtCorrelationID); got != "mine" {
		t.Errorf("preset correlationid = %v, want mine (not overwritten)", got)
	}
	if _, ok := root.Extensions()[middleware.ExtCorrelationID]; ok {
		t.Error("the root event got a correlation id outside a handler")
	}
}
