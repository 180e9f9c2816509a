package es_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

// A cart aggregate: its state is the fold of its events.
type ItemAdded struct {
	SKU   string `json:"sku"`
	Price int    `json:"price"`
}

type Cart struct {
	es.Root
	Total int
}

func (c *Cart) Apply(data any) error {
	switch e := data.(type) {
	case ItemAdded:
		c.Total += e.Price
	}
	return nil
}

func Example() {
	ctx := context.Background()
	reg := es.NewRegistry()
	es.Register[ItemAdded](reg, "shop.item-added")
	store := memory.NewEventStore()
	carts := es.NewRepository(store, reg, func(id string) *Cart { return &Cart{} },
		es.WithStreamIDPrefix("cart-"), es.WithRetryOnConflict(3))

	// A command: load (or start) the cart, raise events, save them with the
	// loaded version as the expected version.
	_, _ = carts.Update(ctx, "42", func(c *Cart) error {
		_ = es.Raise(c, ItemAdded{SKU: "book", Price: 12})
		return es.Raise(c, ItemAdded{SKU: "pen", Price: 3})
	})
	c, _ := carts.Load(ctx, "42")
	fmt.Println("cart 42: total", c.Total, "at version", c.Version())

	// A stale writer gets a ConflictError.
	_, err := store.Append(ctx, "cart-42", es.Exact(1), mustEvent(reg, ItemAdded{SKU: "x", Price: 1}))
	var ce *es.ConflictError
	fmt.Println("conflict:", errors.As(err, &ce), ce.Expected, ce.Actual)

	// A projection follows the global log from its checkpoint.
	revenue := 0
	p, _ := es.NewProjector("revenue", store, memory.NewCheckpointStore(), func(ctx context.Context, r es.RecordedEvent) error {
		datas, err := reg.Decode(r.Event)
		for _, d := range datas {
			revenue += d.(ItemAdded).Price
		}
		return err
	})
	_ = p.CatchUp(ctx)
	fmt.Println("revenue:", revenue, "checkpoint:", p.Position())
	// Output:
	// cart 42: total 15 at version 2
	// conflict: true exact(1) 2
	// revenue: 15 checkpoint: 2
}

func mustEvent(reg *es.Registry, data any) event.Event {
	e, err := reg.Event("id-x", "/example", data)
	if err != nil {
		panic(err)
	}
	return e
}
