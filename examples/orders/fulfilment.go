package main

import (
	"context"
	"errors"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/saga"
)

// Fulfilment is the state of one order's saga.
type Fulfilment struct {
	Order Order `json:"order"`
	// ShipBy is when the carrier must have confirmed the shipment (set by
	// the ship step: a compensation after it is a missed deadline).
	ShipBy time.Time `json:"shipBy,omitzero"`
}

// newFulfilment returns the order saga: reserve the stock, charge the
// payment, ship; each step is started by the reply to the previous command.
// Each step's compensation undoes what the event that started it confirmed,
// so a failure or a deadline undoes exactly what was done, last first:
//
//	step     started by       emits           compensation emits
//	place    order.placed     stock.reserve   order.cancelled
//	charge   stock.reserved   payment.charge  stock.release
//	ship     payment.charged  shipment.ship   payment.refund
//	done     order.shipped    order.completed (completes the saga)
//
// stock.rejected and payment.declined fail the saga. The carrier has
// shipWithin to confirm a shipment; then the saga times out and
// compensates.
func newFulfilment(store saga.Store, shipWithin time.Duration, opts ...saga.Option) (*saga.Saga[Fulfilment], error) {
	s, err := saga.New[Fulfilment]("fulfilment", store, opts...)
	if err != nil {
		return nil, err
	}
	fail := func(ctx context.Context, c *saga.Context[Fulfilment], e event.Event) error {
		return errors.New(reason(e)) // compensates what the saga did so far
	}
	return s, errors.Join(
		s.On(evOrderPlaced, saga.Step[Fulfilment]{Name: "place", Starts: true,
			Do: func(ctx context.Context, c *saga.Context[Fulfilment], e event.Event) error {
				if err := e.DataAs(&c.State.Order); err != nil {
					return err
				}
				o := c.State.Order
				return send(c, stockService, cmdReserveStock, Stock{OrderID: o.ID, SKU: o.SKU, Qty: o.Qty})
			},
			Compensate: func(ctx context.Context, c *saga.Context[Fulfilment]) error {
				out := Outcome{OrderID: c.ID}
				if !c.State.ShipBy.IsZero() {
					out.Reason = "not shipped by " + c.State.ShipBy.Format(time.TimeOnly)
				}
				return emit(c, ordersService, evOrderCancelled, out)
			}}),
		s.On(evStockReserved, saga.Step[Fulfilment]{Name: "charge",
			Do: func(ctx context.Context, c *saga.Context[Fulfilment], e event.Event) error {
				o := c.State.Order
				return send(c, paymentsService, cmdChargePayment, Payment{OrderID: o.ID, Customer: o.Customer, Amount: o.Amount})
			},
			Compensate: func(ctx context.Context, c *saga.Context[Fulfilment]) error {
				o := c.State.Order
				return send(c, stockService, cmdReleaseStock, Stock{OrderID: o.ID, SKU: o.SKU, Qty: o.Qty})
			}}),
		s.On(evPaymentCharged, saga.Step[Fulfilment]{Name: "ship",
			Do: func(ctx context.Context, c *saga.Context[Fulfilment], e event.Event) error {
				o := c.State.Order
				c.State.ShipBy = time.Now().Add(shipWithin)
				c.SetDeadline(c.State.ShipBy)
				return send(c, shippingService, cmdShipOrder, Shipment{OrderID: o.ID, Address: o.Address})
			},
			Compensate: func(ctx context.Context, c *saga.Context[Fulfilment]) error {
				o := c.State.Order
				return send(c, paymentsService, cmdRefundPayment, Payment{OrderID: o.ID, Customer: o.Customer, Amount: o.Amount})
			}}),
		s.On(evOrderShipped, saga.Step[Fulfilment]{Name: "done",
			Do: func(ctx context.Context, c *saga.Context[Fulfilment], e event.Event) error {
				c.Complete()
				return emit(c, ordersService, evOrderCompleted, Outcome{OrderID: c.ID})
			}}),
		s.On(evStockRejected, saga.Step[Fulfilment]{Name: "out of stock", Do: fail}),
		s.On(evPaymentDeclined, saga.Step[Fulfilment]{Name: "declined", Do: fail}),
	)
}

// send emits the command cmdType to the service that owns it, when the step
// commits (the saga's outbox publishes it).
func send(c *saga.Context[Fulfilment], service, cmdType string, data any) error {
	t, err := command.Topic(service+".commands", cmdType)
	if err != nil {
		return err
	}
	return emitTo(c, t, cmdType, data)
}

// emit emits the event evType of service when the step commits.
func emit(c *saga.Context[Fulfilment], service, evType string, data any) error {
	return emitTo(c, service+".events", evType, data)
}

func emitTo(c *saga.Context[Fulfilment], topic, typ string, data any) error {
	// The saga sets a stable id, its source and the correlationid.
	e, err := newEvent("", typ, c.ID, data)
	if err != nil {
		return err
	}
	c.Emit(topic, e)
	return nil
}

// reason returns "<type>: <reason>" for a failure event that gives a
// reason, else its type.
func reason(e event.Event) string {
	var r struct {
		Reason string `json:"reason"`
	}
	if e.DataAs(&r) == nil && r.Reason != "" {
		return e.Type() + ": " + r.Reason
	}
	return e.Type()
}
