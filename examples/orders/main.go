// Command orders is eventkit's order fulfilment demo on the in-process bus.
//
// Five services talk only through events:
//
//	orders        publishes   orders.placed
//	payments      handles     orders.placed          → payments.captured | payments.declined
//	inventory     handles     payments.captured      → inventory.reserved | inventory.rejected
//	payments      handles     inventory.rejected     → payments.refunded
//	notifications handles     inventory.reserved, payments.declined, payments.refunded → notifications.sent
//
// Every event is a CloudEvent whose partitionkey is the order id, so the
// router handles the events of one order in order while different orders
// run concurrently. The program prints each step and a summary.
//
// With -mode es, the same domain runs as an event-sourced Order aggregate
// (package es) on the memory event store, with a projection of order
// totals that follows the global log.
//
//	go run ./examples/orders
//	go run ./examples/orders -mode es
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
)

func main() {
	n := flag.Int("orders", 8, "number of orders to place")
	mode := flag.String("mode", "bus", "bus: services talking through the in-process bus; es: the event-sourced Order aggregate with a projection of order totals")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch *mode {
	case "bus":
		_, err = run(ctx, os.Stdout, *n)
	case "es":
		err = runEventSourced(ctx, os.Stdout)
	default:
		err = fmt.Errorf("unknown -mode %q (want bus or es)", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// Order is the data of orders.placed.
type Order struct {
	ID       string  `json:"id"`
	Customer string  `json:"customer"`
	SKU      string  `json:"sku"`
	Qty      int     `json:"qty"`
	Amount   float64 `json:"amount"`
}

// Payment is the data of the payments.* events.
type Payment struct {
	Order  Order  `json:"order"`
	Reason string `json:"reason,omitempty"`
}

// Notice is the data of notifications.sent.
type Notice struct {
	OrderID  string `json:"orderId"`
	Customer string `json:"customer"`
	Text     string `json:"text"`
}

// Summary counts what happened to the orders.
type Summary struct {
	Placed, Captured, Declined, Reserved, Rejected, Refunded, Notified int
	// Outcome maps each order to its final state.
	Outcome map[string]string
}

// demo holds the services' state.
type demo struct {
	bus *memory.Bus
	out io.Writer

	mu      sync.Mutex
	stock   map[string]int
	sum     Summary
	pending map[string]bool
	allDone chan struct{}
}

func (d *demo) log(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format+"\n", args...)
}

func (d *demo) count(f func(s *Summary)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.sum)
}

// emit publishes data as a CloudEvent caused by the event being handled.
func (d *demo) emit(ctx context.Context, topic, orderID string, cause *eventkit.Message, data any) error {
	e := event.New()
	e.SetID(uuid.NewString())
	e.SetSource("urn:eventkit:examples:orders")
	e.SetType("dev.eventkit.examples." + topic)
	e.SetSubject("orders/" + orderID)
	e.SetTime(time.Now())
	e.SetExtension(eventkit.PartitionKeyExtension, orderID)
	if cause != nil {
		e.SetExtension("causationid", cause.Event.ID())
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return err
	}
	return d.bus.Publish(ctx, topic, e)
}

func (d *demo) finish(orderID, outcome string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sum.Outcome[orderID] = outcome
	delete(d.pending, orderID)
	if len(d.pending) == 0 {
		close(d.allDone)
	}
}

// run places n orders and returns when every order reached a final state.
func run(ctx context.Context, out io.Writer, n int) (Summary, error) {
	if n < 1 {
		return Summary{}, fmt.Errorf("need at least one order, got %d", n)
	}
	d := &demo{
		bus:     memory.New(),
		out:     out,
		stock:   map[string]int{"book": 3, "lamp": 1, "chair": 2},
		pending: map[string]bool{},
		allDone: make(chan struct{}),
		sum:     Summary{Outcome: map[string]string{}},
	}
	defer d.bus.Close()

	r := eventkit.NewRouter(d.bus, eventkit.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ordered := []eventkit.RouteOption{eventkit.Concurrency(4), eventkit.OrderedByKey()}

	// payments: capture unless the amount is over the card limit.
	must(r.Handle("orders.placed", eventkit.Typed(func(ctx context.Context, m *eventkit.Message, o Order) error {
		if o.Amount > 500 {
			d.count(func(s *Summary) { s.Declined++ })
			d.log("  payments      declined %s: %.2f is over the card limit", o.ID, o.Amount)
			return d.emit(ctx, "payments.declined", o.ID, m, Payment{Order: o, Reason: "card limit"})
		}
		d.count(func(s *Summary) { s.Captured++ })
		d.log("  payments      captured %.2f for %s", o.Amount, o.ID)
		return d.emit(ctx, "payments.captured", o.ID, m, Payment{Order: o})
	}), append(ordered, eventkit.RouteName("payments"))...))

	// inventory: reserve stock, or reject.
	must(r.Handle("payments.captured", eventkit.Typed(func(ctx context.Context, m *eventkit.Message, p Payment) error {
		d.mu.Lock()
		left := d.stock[p.Order.SKU]
		ok := left >= p.Order.Qty
		if ok {
			d.stock[p.Order.SKU] = left - p.Order.Qty
		}
		d.mu.Unlock()
		if !ok {
			d.count(func(s *Summary) { s.Rejected++ })
			d.log("  inventory     rejected %s: %d × %s wanted, %d left", p.Order.ID, p.Order.Qty, p.Order.SKU, left)
			return d.emit(ctx, "inventory.rejected", p.Order.ID, m, Payment{Order: p.Order, Reason: "out of stock"})
		}
		d.count(func(s *Summary) { s.Reserved++ })
		d.log("  inventory     reserved %d × %s for %s", p.Order.Qty, p.Order.SKU, p.Order.ID)
		return d.emit(ctx, "inventory.reserved", p.Order.ID, m, p)
	}), append(ordered, eventkit.RouteName("inventory"))...))

	// payments: a rejection triggers a refund.
	must(r.Handle("inventory.rejected", eventkit.Typed(func(ctx context.Context, m *eventkit.Message, p Payment) error {
		d.count(func(s *Summary) { s.Refunded++ })
		d.log("  payments      refunded %.2f for %s", p.Order.Amount, p.Order.ID)
		return d.emit(ctx, "payments.refunded", p.Order.ID, m, p)
	}), append(ordered, eventkit.RouteName("refunds"))...))

	// notifications: one message per order outcome.
	notify := func(outcome string) eventkit.Handler {
		return eventkit.Typed(func(ctx context.Context, m *eventkit.Message, p Payment) error {
			text := map[string]string{
				"confirmed": "your order is confirmed",
				"declined":  "your payment was declined",
				"refunded":  "sorry, out of stock: you were refunded",
			}[outcome]
			if err := d.emit(ctx, "notifications.sent", p.Order.ID, m, Notice{OrderID: p.Order.ID, Customer: p.Order.Customer, Text: text}); err != nil {
				return err
			}
			d.count(func(s *Summary) { s.Notified++ })
			d.log("  notifications told %s about %s: %s", p.Order.Customer, p.Order.ID, text)
			d.finish(p.Order.ID, outcome)
			return nil
		})
	}
	must(r.Handle("inventory.reserved", notify("confirmed"), append(ordered, eventkit.RouteName("notify-confirmed"))...))
	must(r.Handle("payments.declined", notify("declined"), append(ordered, eventkit.RouteName("notify-declined"))...))
	must(r.Handle("payments.refunded", notify("refunded"), append(ordered, eventkit.RouteName("notify-refunded"))...))

	// Start returns once every route is subscribed: no order placed below
	// can be missed. The router runs until rctx ends.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.Start(rctx); err != nil {
		return Summary{}, err
	}

	fmt.Fprintf(out, "eventkit order fulfilment demo: %d orders on the in-process bus\n", n)
	skus := []string{"book", "lamp", "chair"}
	orders := make([]Order, 0, n)
	for i := 1; i <= n; i++ {
		o := Order{
			ID:       fmt.Sprintf("order-%03d", i),
			Customer: fmt.Sprintf("customer-%d", (i-1)%3+1),
			SKU:      skus[(i-1)%len(skus)],
			Qty:      1,
			Amount:   float64(40*i) + 0.99,
		}
		if i%5 == 0 {
			o.Amount = 750 // over the card limit
		}
		orders = append(orders, o)
		d.pending[o.ID] = true // before any is placed: allDone closes once
	}
	for _, o := range orders {
		d.count(func(s *Summary) { s.Placed++ })
		d.log("orders          placed %s: %d × %s, %.2f", o.ID, o.Qty, o.SKU, o.Amount)
		if err := d.emit(ctx, "orders.placed", o.ID, nil, o); err != nil {
			return Summary{}, err
		}
	}

	select {
	case <-d.allDone:
	case <-ctx.Done():
		cancel()
		_ = r.Wait() // the run ends because ctx did: ctx.Err() says why
		return Summary{}, ctx.Err()
	case <-r.Done():
		return Summary{}, fmt.Errorf("router stopped: %w", r.Wait())
	}
	cancel()
	if err := r.Wait(); err != nil {
		return Summary{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sum
	fmt.Fprintf(out, "\nsummary: %d placed, %d captured, %d declined, %d reserved, %d rejected, %d refunded, %d notified\n",
		s.Placed, s.Captured, s.Declined, s.Reserved, s.Rejected, s.Refunded, s.Notified)
	ids := make([]string, 0, len(s.Outcome))
	for id := range s.Outcome {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s %s\n", id, s.Outcome[id])
	}
	fmt.Fprint(out, b.String())
	return s, nil
}

func must(err error) {
	if err != nil {
		panic(err) // a route in this program is wrong: a bug, not an input error
	}
}
