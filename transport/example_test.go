package transport_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/transport"
)

// A transport package builds its Transport with transport.New on its
// driver (here the tests' in-process fake, which cannot nack with a delay).
func Example() {
	d := newFake(eventkit.CapWildcards | eventkit.CapNack | eventkit.CapAttemptCount)
	tr, err := transport.New(d, d, transport.WithName("fake"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	fmt.Println("capabilities:", eventkit.CapabilitiesOf(tr))

	ctx := context.Background()
	_, err = tr.Subscribe(ctx, "orders.>", eventkit.Require(eventkit.CapNackDelay))
	fmt.Println("unsupported:", errors.Is(err, eventkit.ErrUnsupported))

	sub, err := tr.Subscribe(ctx, "orders.>")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tr.Publish(ctx, "orders.eu.created", eventkittest.NewEvent("o-1")); err != nil {
		fmt.Println(err)
		return
	}
	m := <-sub.Messages()
	fmt.Println(m.Topic, m.Event.ID(), m.Attempt)
	_ = m.Nack(errors.New("try again"))
	m = <-sub.Messages()
	fmt.Println(m.Topic, m.Event.ID(), m.Attempt)
	_ = m.Ack()
	// Output:
	// capabilities: wildcards|nack|attempt-count
	// unsupported: true
	// orders.eu.created o-1 1
	// orders.eu.created o-1 2
}
