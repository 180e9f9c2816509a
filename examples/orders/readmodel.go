package main

import (
	"context"
	"slices"
	"sync"

	"github.com/eventkit/eventkit"
)

// OrderView is one order as the read model shows it.
type OrderView struct {
	Order
	// Status is placed, reserved, charged, shipped, completed or cancelled.
	Status string
	// Failure is why the order was cancelled.
	Failure string
	// Held lists what the order holds and must give back if cancelled:
	// "stock" from stock.reserved to stock.released, "payment" from
	// payment.charged to payment.refunded.
	Held []string
}

// Settled reports whether nothing more will happen to the order: it
// completed, or it was cancelled and gave back all it held.
func (v OrderView) Settled() bool {
	return v.Status == "completed" || v.Status == "cancelled" && len(v.Held) == 0
}

// ReadModel is the projection of every service's events into one view per
// order: the query side, which the services never read. Events of one
// order arrive in order (the route is ordered by key); a status never goes
// back, so an event that a compensation raced with still lands right.
type ReadModel struct {
	mu      sync.Mutex
	orders  map[string]*OrderView
	changed chan struct{} // closed and replaced at each change
}

func newReadModel() *ReadModel {
	return &ReadModel{orders: map[string]*OrderView{}, changed: make(chan struct{})}
}

// rank orders the statuses; the final ones rank highest.
var rank = map[string]int{"placed": 1, "reserved": 2, "charged": 3, "shipped": 4, "completed": 5, "cancelled": 5}

// apply is the projection's handler: one event changes one view.
func (rm *ReadModel) apply(_ context.Context, m *eventkit.Message) error {
	e := m.Event
	rm.mu.Lock()
	defer rm.mu.Unlock()
	v := rm.orders[e.Subject()]
	if v == nil {
		v = &OrderView{Order: Order{ID: e.Subject()}}
		rm.orders[e.Subject()] = v
	}
	status := ""
	switch e.Type() {
	case evOrderPlaced:
		if err := e.DataAs(&v.Order); err != nil {
			return eventkit.Permanent(err) // a bad event is not retried
		}
		status = "placed"
	case evStockReserved:
		status, v.Held = "reserved", append(v.Held, "stock")
	case evPaymentCharged:
		status, v.Held = "charged", append(v.Held, "payment")
	case evOrderShipped:
		status = "shipped"
	case evOrderCompleted:
		status = "completed"
	case evOrderCancelled:
		status = "cancelled"
		if v.Failure == "" {
			v.Failure = reason(e)
		}
	case evStockRejected, evPaymentDeclined:
		v.Failure = reason(e)
	case evStockReleased:
		v.Held = slices.DeleteFunc(v.Held, func(h string) bool { return h == "stock" })
	case evPaymentRefunded:
		v.Held = slices.DeleteFunc(v.Held, func(h string) bool { return h == "payment" })
	}
	if rank[status] > rank[v.Status] {
		v.Status = status
	}
	close(rm.changed)
	rm.changed = make(chan struct{})
	return nil
}

// Get returns the view of an order.
func (rm *ReadModel) Get(id string) (OrderView, bool) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	v, ok := rm.orders[id]
	if !ok {
		return OrderView{}, false
	}
	out := *v
	out.Held = slices.Clone(v.Held)
	return out, true
}

// WaitSettled waits until every order of ids is settled, or ctx ends.
func (rm *ReadModel) WaitSettled(ctx context.Context, ids []string) error {
	for {
		rm.mu.Lock()
		changed := rm.changed
		settled := true
		for _, id := range ids {
			if v := rm.orders[id]; v == nil || !v.Settled() {
				settled = false
				break
			}
		}
		rm.mu.Unlock()
		if settled {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
