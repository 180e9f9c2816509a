package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

// The event-sourced variant of the demo: an Order aggregate whose state is
// the fold of its events, kept in an event store, and a projection of order
// totals that follows the store's global log from a checkpoint.

// Events of the Order aggregate (the data of CloudEvents of type "order.*").
type esOrderPlaced struct {
	Customer string `json:"customer"`
}
type esItemAdded struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}
type esOrderPaid struct {
	Amount float64 `json:"amount"`
}
type esOrderCancelled struct {
	Reason string `json:"reason"`
}
type esOrderShipped struct{}

// esOrder is the aggregate.
type esOrder struct {
	es.Root
	Customer string
	Total    float64
	Status   string // placed, paid, shipped, cancelled
}

// Apply folds one event into the state.
func (o *esOrder) Apply(data any) error {
	switch e := data.(type) {
	case esOrderPlaced:
		o.Customer, o.Status = e.Customer, "placed"
	case esItemAdded:
		o.Total += float64(e.Qty) * e.Price
	case esOrderPaid:
		o.Status = "paid"
	case esOrderCancelled:
		o.Status = "cancelled"
	case esOrderShipped:
		o.Status = "shipped"
	default:
		return fmt.Errorf("order: unexpected event %T", data)
	}
	return nil
}

// Commands: each checks the state, then raises events.
func (o *esOrder) place(customer string) error {
	if o.Status != "" {
		return errors.New("order already placed")
	}
	return es.Raise(o, esOrderPlaced{Customer: customer})
}

func (o *esOrder) addItem(sku string, qty int, price float64) error {
	if o.Status != "placed" {
		return fmt.Errorf("cannot add items to a %s order", o.Status)
	}
	return es.Raise(o, esItemAdded{SKU: sku, Qty: qty, Price: price})
}

func (o *esOrder) pay(limit float64) error {
	if o.Status != "placed" {
		return fmt.Errorf("cannot pay a %s order", o.Status)
	}
	if o.Total > limit {
		return es.Raise(o, esOrderCancelled{Reason: fmt.Sprintf("payment declined: %.2f over the limit of %.2f", o.Total, limit)})
	}
	return es.Raise(o, esOrderPaid{Amount: o.Total})
}

func (o *esOrder) ship() error {
	if o.Status != "paid" {
		return fmt.Errorf("cannot ship a %s order", o.Status)
	}
	return es.Raise(o, esOrderShipped{})
}

// esTotals is the read model: totals per customer, fed by the projection.
type esTotals struct {
	mu       sync.Mutex
	paid     map[string]float64 // customer -> paid amount
	orders   map[string]int     // customer -> shipped orders
	canceled int
}

func runEventSourced(ctx context.Context, w io.Writer) error {
	reg := es.NewRegistry()
	es.Register[esOrderPlaced](reg, "order.placed")
	es.Register[esItemAdded](reg, "order.item-added")
	es.Register[esOrderPaid](reg, "order.paid")
	es.Register[esOrderCancelled](reg, "order.cancelled")
	es.Register[esOrderShipped](reg, "order.shipped")

	store := memory.NewEventStore()
	orders := es.NewRepository(store, reg, func(id string) *esOrder { return &esOrder{} },
		es.WithStreamIDPrefix("order-"), es.WithSource("/examples/orders"),
		es.WithRetryOnConflict(5), es.WithSnapshots(memory.NewSnapshotStore(), 4, 1))

	update := func(id string, what string, cmd func(o *esOrder) error) error {
		res, err := orders.Update(ctx, id, cmd)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, id, err)
		}
		fmt.Fprintf(w, "  %-8s %-10s → stream order-%s at version %d\n", id, what, id, res.Version)
		return nil
	}

	fmt.Fprintln(w, "event-sourced orders:")
	type line struct {
		sku   string
		qty   int
		price float64
	}
	plan := []struct {
		id, customer string
		items        []line
	}{
		{"o-1", "ada", []line{{"book", 2, 12.5}, {"pen", 3, 1.2}}},
		{"o-2", "bob", []line{{"laptop", 1, 1800}}},
		{"o-3", "ada", []line{{"lamp", 1, 35}}},
		{"o-4", "cy", []line{{"mug", 4, 6.25}}},
	}
	const limit = 1000.0
	for _, p := range plan {
		if err := update(p.id, "place", func(o *esOrder) error { return o.place(p.customer) }); err != nil {
			return err
		}
		for _, it := range p.items {
			if err := update(p.id, "add "+it.sku, func(o *esOrder) error { return o.addItem(it.sku, it.qty, it.price) }); err != nil {
				return err
			}
		}
		if err := update(p.id, "pay", func(o *esOrder) error { return o.pay(limit) }); err != nil {
			return err
		}
	}

	// Two clerks add to the same order at once: one save conflicts, and
	// the repository runs that command again on the fresh state.
	if err := update("o-5", "place", func(o *esOrder) error { return o.place("dee") }); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, sku := range []string{"tea", "cake"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = orders.Update(ctx, "o-5", func(o *esOrder) error { return o.addItem(sku, 1, 4) })
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	o5, err := orders.Load(ctx, "o-5")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  o-5      two clerks added tea and cake at once → version %d, total %.2f (a conflicting save is retried)\n", o5.Version(), o5.Total)
	if err := update("o-5", "pay", func(o *esOrder) error { return o.pay(limit) }); err != nil {
		return err
	}

	// A stale command fails with a ConflictError naming the versions.
	stale, err := orders.Load(ctx, "o-1")
	if err != nil {
		return err
	}
	if err := update("o-1", "ship", func(o *esOrder) error { return o.ship() }); err != nil {
		return err
	}
	_ = stale.ship() // on the stale copy, shipped already in the store
	_, err = orders.Save(ctx, stale)
	var ce *es.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("stale save: got %v, want a conflict", err)
	}
	fmt.Fprintf(w, "  stale save of %s rejected: expected version %d, actual %d\n", ce.Stream, ce.Expected, ce.Actual)
	for _, id := range []string{"o-3", "o-4", "o-5"} {
		if err := update(id, "ship", func(o *esOrder) error { return o.ship() }); err != nil {
			return err
		}
	}

	// The projection: totals per customer from the global log.
	totals := &esTotals{paid: map[string]float64{}, orders: map[string]int{}}
	customers := map[string]string{} // order stream -> customer
	paid := map[string]float64{}     // order stream -> paid amount
	checkpoints := memory.NewCheckpointStore()
	project := func(ctx context.Context, r es.RecordedEvent) error {
		datas, err := reg.Decode(r.Event)
		if err != nil {
			return err
		}
		totals.mu.Lock()
		defer totals.mu.Unlock()
		for _, d := range datas {
			switch e := d.(type) {
			case esOrderPlaced:
				customers[r.StreamID] = e.Customer
			case esOrderPaid:
				paid[r.StreamID] = e.Amount
			case esOrderShipped:
				c := customers[r.StreamID]
				totals.paid[c] += paid[r.StreamID]
				totals.orders[c]++
			case esOrderCancelled:
				totals.canceled++
			}
		}
		return nil
	}
	proj, err := es.NewProjector("order-totals", store, checkpoints, project)
	if err != nil {
		return err
	}
	if err := proj.CatchUp(ctx); err != nil {
		return err
	}
	head, _ := store.Head(ctx)
	fmt.Fprintf(w, "projection order-totals at position %d of %d (lag %d):\n", proj.Position(), head, proj.Lag())
	names := make([]string, 0, len(totals.paid))
	for c := range totals.paid {
		names = append(names, c)
	}
	sort.Strings(names)
	var revenue float64
	for _, c := range names {
		fmt.Fprintf(w, "  %-4s %d shipped order(s), %8.2f\n", c, totals.orders[c], totals.paid[c])
		revenue += totals.paid[c]
	}
	fmt.Fprintf(w, "  revenue %.2f, cancelled orders %d\n", revenue, totals.canceled)

	// Every aggregate, loaded from its events (or a snapshot and the events
	// after it), agrees with the projection.
	var fromAggregates float64
	for _, p := range []string{"o-1", "o-2", "o-3", "o-4", "o-5"} {
		o, err := orders.Load(ctx, p)
		if err != nil {
			return err
		}
		if o.Status == "shipped" {
			fromAggregates += o.Total
		}
		fmt.Fprintf(w, "  order %s: %-9s total %8.2f (version %d)\n", p, o.Status, o.Total, o.Version())
	}
	if fromAggregates != revenue {
		return fmt.Errorf("projection revenue %.2f differs from the aggregates' %.2f", revenue, fromAggregates)
	}
	return nil
}
