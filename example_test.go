package eventkit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
)

type Shipment struct {
	Order string `json:"order"`
	Items int    `json:"items"`
}

// A router with a typed handler on the in-process bus.
func ExampleRouter() {
	bus := memory.New()
	defer bus.Close()

	r := eventkit.NewRouter(bus)
	handled := make(chan struct{})
	_ = r.Handle("shipments.>", eventkit.Typed(func(ctx context.Context, m *eventkit.Message, s Shipment) error {
		fmt.Printf("%s: ship %d items of %s (attempt %d)\n", m.Topic, s.Items, s.Order, m.Attempt)
		close(handled)
		return nil // ack
	}), eventkit.Concurrency(4), eventkit.OrderedByKey())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Start(ctx); err != nil { // returns once every route is subscribed
		fmt.Println(err)
		return
	}

	e := event.New()
	e.SetID("ship-1")
	e.SetSource("urn:example:warehouse")
	e.SetType("example.shipment.requested")
	e.SetExtension(eventkit.PartitionKeyExtension, "order-7")
	_ = e.SetData(event.ApplicationJSON, Shipment{Order: "order-7", Items: 3})
	if err := bus.Publish(ctx, "shipments.eu.requested", e); err != nil {
		fmt.Println(err)
	}

	<-handled
	cancel()
	fmt.Println("router stopped:", r.Wait())
	// Output:
	// shipments.eu.requested: ship 3 items of order-7 (attempt 1)
	// router stopped: <nil>
}

// Publishing validates events first; the error names the attribute.
func ExampleValidateEvent() {
	e := event.New()
	e.SetID("1")
	e.SetType("example.thing.happened")
	// no source
	fmt.Println(eventkit.ValidateEvent(e))
	// Output:
	// invalid CloudEvent: attribute "source": required, must be a non-empty URI-reference
}

// RetryAfter asks the router to nack with a redelivery delay.
func ExampleRetryAfter() {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus)
	done := make(chan struct{})
	_ = r.HandleFunc("jobs", func(ctx context.Context, m *eventkit.Message) error {
		if m.Attempt == 1 {
			return eventkit.RetryAfter(fmt.Errorf("busy"), 50*time.Millisecond)
		}
		fmt.Println("handled on attempt", m.Attempt)
		close(done)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- r.Run(ctx) }()
	<-r.Running()
	e := event.New()
	e.SetID("job-1")
	e.SetSource("urn:example")
	e.SetType("example.job")
	_ = bus.Publish(ctx, "jobs", e)
	<-done
	cancel()
	<-stopped
	// Output:
	// handled on attempt 2
}
