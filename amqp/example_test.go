package amqp_test

import (
	"context"
	"fmt"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
)

// Two groups bound to one pattern each get every event; Publish returns once
// the broker confirmed it. (Compiled, not run by go test: it needs a broker;
// TestTransport covers the same path.)
func Example() {
	ctx := context.Background()
	tr, err := ekamqp.Dial(ctx, eventkittest.Env("EVENTKIT_AMQP_URL", eventkittest.DefaultAMQPURL))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	billing, _ := tr.Subscribe(ctx, "orders.>", eventkit.WithGroup("billing"))
	shipping, _ := tr.Subscribe(ctx, "orders.*.created", eventkit.WithGroup("shipping"))
	if err := tr.Publish(ctx, "orders.eu.created", eventkittest.NewEvent("o-1")); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range []eventkit.Subscription{billing, shipping} {
		m := <-s.Messages()
		fmt.Println(m.Topic, m.Attempt)
		_ = m.Ack()
	}
}
