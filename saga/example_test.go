package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/saga"
)

// Checkout is the state of a checkout saga.
type Checkout struct {
	Items    int  `json:"items"`
	Reserved bool `json:"reserved"`
}

// command returns a command event; the saga gives it an id, a source and
// the instance's correlationid.
func command(typ string) event.Event {
	e := event.New()
	e.SetType(typ)
	return e
}

// incoming returns an event for the checkout correlated by key.
func incoming(id, typ, key string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("urn:shop")
	e.SetType(typ)
	e.SetExtension("correlationid", key)
	_ = e.SetData(event.ApplicationJSON, map[string]int{"items": 2})
	return e
}

// checkoutSaga returns a saga that reserves stock, then charges, then
// completes; a declined payment undoes the reservation.
func checkoutSaga(store saga.Store) (*saga.Saga[Checkout], error) {
	s, err := saga.New[Checkout]("checkout", store) // saga.WithTimeout(d) would add a deadline
	if err != nil {
		return nil, err
	}
	return s, errors.Join(
		s.On("shop.order.placed", saga.Step[Checkout]{Name: "reserve", Starts: true,
			Do: func(ctx context.Context, c *saga.Context[Checkout], e event.Event) error {
				if err := e.DataAs(c.State); err != nil {
					return err // a bad event fails the instance
				}
				c.Emit("stock.commands", command("stock.reserve"))
				return nil
			},
			Compensate: func(ctx context.Context, c *saga.Context[Checkout]) error {
				c.Emit("stock.commands", command("stock.release"))
				return nil
			}}),
		s.On("stock.reserved", saga.Step[Checkout]{Name: "charge",
			Do: func(ctx context.Context, c *saga.Context[Checkout], e event.Event) error {
				c.State.Reserved = true
				c.Emit("payment.commands", command("payment.charge"))
				return nil
			}}),
		s.On("payment.declined", saga.Step[Checkout]{Name: "declined",
			Do: func(ctx context.Context, c *saga.Context[Checkout], e event.Event) error {
				return errors.New("payment declined")
			}}),
		s.On("payment.charged", saga.Step[Checkout]{Name: "complete",
			Do: func(ctx context.Context, c *saga.Context[Checkout], e event.Event) error {
				c.Complete()
				return nil
			}}),
	)
}

// A checkout saga whose payment is declined: its reservation is released.
func ExampleNew() {
	ctx := context.Background()
	store := memory.NewSagaStore()
	s, err := checkoutSaga(store)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []event.Event{
		incoming("e1", "shop.order.placed", "order-1"),
		incoming("e2", "stock.reserved", "order-1"),
		incoming("e2", "stock.reserved", "order-1"), // redelivered: handled once
		incoming("e3", "payment.declined", "order-1"),
	} {
		if err := s.HandleEvent(ctx, e); err != nil {
			fmt.Println(err)
		}
	}
	in, _ := s.Get(ctx, "order-1")
	fmt.Println(in.ID, in.Status, "items:", in.State.Items)
	for _, h := range in.History {
		fmt.Println(strings.TrimRight(fmt.Sprintf("  %s %s %s", h.Kind, h.Step, h.Error), " "))
	}
	for _, r := range store.Outbox().Pending() { // what a relay publishes
		fmt.Println("emitted", r.Topic, r.Event.Type())
	}
	// Output:
	// order-1 compensated items: 2
	//   step reserve
	//   step charge
	//   failed declined payment declined
	//   compensated reserve
	//   ended
	// emitted stock.commands stock.reserve
	// emitted payment.commands payment.charge
	// emitted stock.commands stock.release
}
