package memory_test

import (
	"context"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
)

// Two consumer groups each get every event; a lone subscription too.
func ExampleBus() {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()

	billing, _ := bus.Subscribe(ctx, "orders.*", eventkit.WithGroup("billing"))
	audit, _ := bus.Subscribe(ctx, "orders.>", memory.WithPolicy(memory.DropOldest), eventkit.WithBuffer(100))

	e := event.New()
	e.SetID("o-1")
	e.SetSource("urn:shop")
	e.SetType("shop.order.placed")
	_ = bus.Publish(ctx, "orders.placed", e)

	m := <-billing.Messages()
	fmt.Println("billing got", m.Event.ID(), "from", m.Topic)
	_ = m.Ack()
	m = <-audit.Messages()
	fmt.Println("audit got", m.Event.ID(), "attempt", m.Attempt)
	_ = m.Nack(fmt.Errorf("try again"))
	m = <-audit.Messages()
	fmt.Println("audit got", m.Event.ID(), "attempt", m.Attempt)
	_ = m.Ack()
	// Output:
	// billing got o-1 from orders.placed
	// audit got o-1 attempt 1
	// audit got o-1 attempt 2
}
