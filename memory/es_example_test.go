package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

type ItemAdded struct {
	SKU   string
	Price float64
}

type Order struct {
	es.Root
	Total float64
}

func (o *Order) Apply(data any) error {
	if e, ok := data.(ItemAdded); ok {
		o.Total += e.Price
	}
	return nil
}

// Load of an aggregate that has no event yet returns es.ErrNotFound
// together with a usable aggregate: its id set, version 0. Raising events on
// it and saving it creates its stream (docs/event-sourcing.md).
func ExampleEventStore_newAggregate() {
	ctx := context.Background()
	reg := es.NewRegistry()
	es.Register[ItemAdded](reg, "order.item-added")
	orders := es.NewRepository(memory.NewEventStore(), reg, func(id string) *Order { return &Order{} })

	o, err := orders.Load(ctx, "43")
	if err != nil && !errors.Is(err, es.ErrNotFound) {
		fmt.Println(err) // o must not be used
		return
	}
	fmt.Println("not found:", errors.Is(err, es.ErrNotFound), "id:", o.ID(), "version:", o.Version())
	if err := es.Raise(o, ItemAdded{SKU: "pen", Price: 2}); err != nil {
		fmt.Println(err)
		return
	}
	res, err := orders.Save(ctx, o) // expects es.NoStream: creates the stream
	fmt.Println("saved version:", res.Version, err)

	o, err = orders.Load(ctx, "43")
	fmt.Println("loaded:", o.Version(), o.Total, err)
	// Output:
	// not found: true id: 43 version: 0
	// saved version: 1 <nil>
	// loaded: 1 2 <nil>
}
