package main

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
)

// The services. Each owns its commands (one handler per command type,
// command.Handlers) and publishes what happened as events. Commands are
// delivered at least once, so every handler is idempotent: it remembers
// what it did per order, and the event it publishes has an id derived from
// the command's, so that a redelivered command yields the same event,
// which the saga handles once.

// service is what the services share: where they publish and log.
type service struct {
	name string
	pub  eventkit.Publisher
	log  func(format string, args ...any)
}

// publish publishes the event evType about an order, caused by the
// command being handled in ctx.
func (s *service) publish(ctx context.Context, evType, orderID string, data any) error {
	cmd, _ := command.EventFromContext(ctx)
	e, err := newEvent(cmd.ID()+"/"+evType, evType, orderID, data)
	if err != nil {
		return err
	}
	e.SetSource("/examples/orders/" + s.name)
	e.SetExtension("causationid", cmd.ID())
	return s.pub.Publish(ctx, s.name+".events", e)
}

// mount mounts the service's command handlers on r, on the topics
// "<name>.commands.<type>", after registering each of them with register
// (command.Handle: one handler per command type).
func (s *service) mount(r *eventkit.Router, register ...func(*command.Handlers) error) error {
	h, err := command.NewHandlers(s.pub, command.WithPrefix(s.name+".commands"), command.WithSource("/examples/orders/"+s.name))
	if err != nil {
		return err
	}
	for _, reg := range register {
		if err := reg(h); err != nil {
			return err
		}
	}
	return h.Mount(r)
}

// newEvent returns an event of type typ about orderID: its subject,
// partition key and correlation id are the order id. An empty id is left
// for the saga to set.
func newEvent(id, typ, orderID string, data any) (event.Event, error) {
	e := event.New()
	if id != "" {
		e.SetID(id)
	}
	e.SetType(typ)
	e.SetSubject(orderID)
	e.SetExtension(eventkit.PartitionKeyExtension, orderID)
	e.SetExtension("correlationid", orderID)
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return e, fmt.Errorf("%s for %s: %w", typ, orderID, err)
	}
	return e, nil
}

// Orders takes orders: order.place is a request, answered once the order
// is placed.
type Orders struct{ service }

func (o *Orders) mount(r *eventkit.Router) error {
	return o.service.mount(r, func(h *command.Handlers) error {
		return command.HandleReply(h, cmdPlaceOrder, o.place)
	})
}

func (o *Orders) place(ctx context.Context, ord Order) (Accepted, error) {
	o.log("orders    placed %s: %d × %s, %s", ord.ID, ord.Qty, ord.SKU, cents(ord.Amount))
	return Accepted{OrderID: ord.ID}, o.publish(ctx, evOrderPlaced, ord.ID, ord)
}

// Inventory holds the stock and the reservations, by order.
type Inventory struct {
	service
	mu       sync.Mutex
	levels   map[string]int   // units on the shelf, by SKU
	reserved map[string]Stock // by order
}

// Levels returns the units on the shelf, by SKU.
func (inv *Inventory) Levels() map[string]int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return maps.Clone(inv.levels)
}

func (inv *Inventory) mount(r *eventkit.Router) error {
	return inv.service.mount(r,
		func(h *command.Handlers) error { return command.Handle(h, cmdReserveStock, inv.reserve) },
		func(h *command.Handlers) error { return command.Handle(h, cmdReleaseStock, inv.release) })
}

func (inv *Inventory) reserve(ctx context.Context, s Stock) error {
	inv.mu.Lock()
	_, again := inv.reserved[s.OrderID]
	left := inv.levels[s.SKU]
	ok := again || left >= s.Qty
	if ok && !again {
		inv.levels[s.SKU] -= s.Qty
		inv.reserved[s.OrderID] = s
	}
	inv.mu.Unlock()
	if !ok {
		inv.log("stock     rejected %s: %d × %s wanted, %d left", s.OrderID, s.Qty, s.SKU, left)
		return inv.publish(ctx, evStockRejected, s.OrderID, s)
	}
	inv.log("stock     reserved %d × %s for %s", s.Qty, s.SKU, s.OrderID)
	return inv.publish(ctx, evStockReserved, s.OrderID, s)
}

func (inv *Inventory) release(ctx context.Context, s Stock) error {
	inv.mu.Lock()
	held, ok := inv.reserved[s.OrderID]
	if ok {
		inv.levels[held.SKU] += held.Qty
		delete(inv.reserved, s.OrderID)
	}
	inv.mu.Unlock()
	if ok {
		inv.log("stock     released %d × %s of %s", held.Qty, held.SKU, s.OrderID)
	}
	return inv.publish(ctx, evStockReleased, s.OrderID, s)
}

// Payments charges customers, up to a card limit per payment.
type Payments struct {
	service
	limit   int64
	mu      sync.Mutex
	charged map[string]int64 // by order, refunds removed
}

func (p *Payments) mount(r *eventkit.Router) error {
	return p.service.mount(r,
		func(h *command.Handlers) error { return command.Handle(h, cmdChargePayment, p.charge) },
		func(h *command.Handlers) error { return command.Handle(h, cmdRefundPayment, p.refund) })
}

func (p *Payments) charge(ctx context.Context, pay Payment) error {
	if pay.Amount > p.limit {
		pay.Reason = "over the card limit"
		p.log("payments  declined %s for %s: %s", cents(pay.Amount), pay.OrderID, pay.Reason)
		return p.publish(ctx, evPaymentDeclined, pay.OrderID, pay)
	}
	p.mu.Lock()
	p.charged[pay.OrderID] = pay.Amount // a second charge of one order is the same charge
	p.mu.Unlock()
	p.log("payments  charged %s for %s", cents(pay.Amount), pay.OrderID)
	return p.publish(ctx, evPaymentCharged, pay.OrderID, pay)
}

func (p *Payments) refund(ctx context.Context, pay Payment) error {
	p.mu.Lock()
	amount, ok := p.charged[pay.OrderID]
	delete(p.charged, pay.OrderID)
	p.mu.Unlock()
	if ok {
		p.log("payments  refunded %s for %s", cents(amount), pay.OrderID)
	}
	return p.publish(ctx, evPaymentRefunded, pay.OrderID, pay)
}

// Charged returns the amounts charged and not refunded, by order.
func (p *Payments) Charged() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.charged)
}

// Shipping hands orders to a carrier. The carrier of noCarrier never
// confirms: the saga's deadline catches it.
type Shipping struct {
	service
	noCarrier string
}

func (s *Shipping) mount(r *eventkit.Router) error {
	return s.service.mount(r, func(h *command.Handlers) error { return command.Handle(h, cmdShipOrder, s.ship) })
}

func (s *Shipping) ship(ctx context.Context, sh Shipment) error {
	if sh.Address == s.noCarrier {
		s.log("shipping  no carrier answers for %s (%s)", sh.OrderID, sh.Address)
		return nil
	}
	s.log("shipping  shipped %s to %s", sh.OrderID, sh.Address)
	return s.publish(ctx, evOrderShipped, sh.OrderID, sh)
}

// cents formats an amount in cents.
func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
