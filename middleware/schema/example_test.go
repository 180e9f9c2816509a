package schema_test

import (
	"context"
	"fmt"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/schema"
)

// An event whose data breaks its schema fails with a permanent error, which
// DeadLetter dead-letters at once.
func ExampleMiddleware() {
	validate, err := schema.Middleware(schema.ForType("shop.order.created",
		[]byte(`{"type":"object","required":["total"],"properties":{"total":{"type":"number"}}}`)))
	if err != nil {
		fmt.Println(err)
		return
	}
	h := validate(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil }))
	for _, data := range []string{`{"total": 12.5}`, `{"total": "twelve"}`} {
		err := h.Handle(context.Background(), eventkit.NewMessage("orders", mwtest.ExampleEvent("o-1", "shop.order.created", data), 1, nil, nil))
		fmt.Println(data, "valid:", err == nil, "permanent:", middleware.IsPermanent(err))
	}
	// Output:
	// {"total": 12.5} valid: true permanent: false
	// {"total": "twelve"} valid: false permanent: true
}
