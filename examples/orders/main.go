// Command orders is eventkit's order fulfilment demo: an orchestrated saga,
// services that own their commands, and a read model, on the in-process
// bus (no server needed).
//
//	client ──order.place (Request)──▶ orders ──order.placed──▶ fulfilment saga
//	saga ──stock.reserve──▶ stock ──stock.reserved──▶ saga
//	saga ──payment.charge──▶ payments ──payment.charged | payment.declined──▶ saga
//	saga ──shipment.ship──▶ shipping ──order.shipped──▶ saga ──order.completed
//	every event ──▶ read model (one view per order)
//
// The saga (package saga) keeps its state in a memory.SagaStore; the
// commands and events a step emits are committed with the step into the
// store's outbox and published by an outbox.Relay. A declined payment
// cancels the order and releases its stock; a shipment that no carrier
// confirms in time refunds the payment, releases the stock and cancels the
// order: each compensation undoes one completed step, last first. The
// services handle commands with package command (exactly one handler per
// command type; order.place is a request with a reply). The read model is
// a projection of every service's events.
//
//	go run ./examples/orders
//	go run ./examples/orders -ship-within 500ms
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	shipWithin := flag.Duration("ship-within", 2*time.Second, "how long the carrier has to confirm a shipment")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := demo(ctx, os.Stdout, *shipWithin); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// demoOrders are the orders the demo places: two ship, one is over the
// card limit, one goes where no carrier answers.
var demoOrders = []Order{
	{ID: "order-1", Customer: "ada", SKU: "book", Qty: 2, Amount: 4_200, Address: "London"},
	{ID: "order-2", Customer: "grace", SKU: "lamp", Qty: 1, Amount: 95_000, Address: "Arlington"},
	{ID: "order-3", Customer: "edsger", SKU: "chair", Qty: 1, Amount: 12_900, Address: "Atlantis"},
	{ID: "order-4", Customer: "barbara", SKU: "book", Qty: 1, Amount: 2_100, Address: "Boston"},
}

// demo runs the shop, places demoOrders, waits until each is settled and
// prints the read model.
func demo(ctx context.Context, out io.Writer, shipWithin time.Duration) error {
	shop, err := NewShop(Config{ShipWithin: shipWithin, Log: out})
	if err != nil {
		return err
	}
	if err := shop.Start(ctx); err != nil {
		return err
	}
	defer shop.Stop()
	fmt.Fprintf(out, "eventkit order fulfilment: %d orders, carriers confirm within %s\n", len(demoOrders), shipWithin)
	var ids []string
	for _, o := range demoOrders {
		if err := shop.Place(ctx, o); err != nil {
			return err
		}
		ids = append(ids, o.ID)
	}
	if err := shop.ReadModel().WaitSettled(ctx, ids); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nread model:")
	for _, id := range ids {
		v, _ := shop.ReadModel().Get(id)
		fmt.Fprintf(out, "  %s %-8s %-10s %9s  %s\n", v.ID, v.Customer, v.Status, cents(v.Amount), v.Failure)
	}
	fmt.Fprintf(out, "stock left: %v\n", shop.Inventory().Levels())
	return nil
}
