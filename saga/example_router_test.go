package saga_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
)

// A saga on a Router, its commands published by an outbox relay.
func ExampleSaga_Handler() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := memory.New()
	defer bus.Close()
	store := memory.NewSagaStore()
	s, err := checkoutSaga(store)
	if err != nil {
		fmt.Println(err)
		return
	}
	commands, _ := bus.Subscribe(ctx, "stock.commands")
	router := eventkit.NewRouter(bus)
	_ = router.Handle("shop.orders", s.Handler())
	if err := router.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	relay, err := outbox.NewRelay(store.Outbox(), bus, outbox.WithPollInterval(10*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred calls run last first)
	defer cancel()
	wg.Go(func() { _ = relay.Run(ctx) })
	wg.Go(func() { _ = s.Run(ctx) }) // deadlines and resumed compensations

	_ = bus.Publish(ctx, "shop.orders", incoming("e1", "shop.order.placed", "order-9"))
	m := <-commands.Messages()
	fmt.Println(m.Event.Type(), "for", m.Event.Extensions()["correlationid"], "id", m.Event.ID())
	_ = m.Ack()
	// Output:
	// stock.reserve for order-9 id checkout/order-9/1/0
}
