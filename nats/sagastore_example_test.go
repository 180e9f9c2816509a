package nats_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit/memory"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// A saga whose instances and emitted commands live in a JetStream
// key-value bucket: the step's state and its command are one atomic batch,
// and a relay on the store's outbox publishes the command.
func ExampleNewSagaStore() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := natsserver.Run() // or nats.Connect to a server or cluster
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, _ := srv.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := eknats.NewSagaStore(ctx, js, "sagas")
	if err != nil {
		fmt.Println(err)
		return
	}

	type checkout struct{ Items int }
	s, _ := saga.New[checkout]("checkout", store)
	_ = s.On("order.placed", saga.Step[checkout]{Starts: true,
		Do: func(ctx context.Context, c *saga.Context[checkout], e event.Event) error {
			c.State.Items = 2
			cmd := event.New()
			cmd.SetType("stock.reserve")
			c.Emit("stock.commands", cmd)
			return nil
		}})

	bus := memory.New() // where the relay publishes; any transport
	defer bus.Close()
	commands, _ := bus.Subscribe(ctx, "stock.commands")
	relay, _ := outbox.NewRelay(store.Outbox(), bus, outbox.WithPollInterval(10*time.Millisecond))
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	defer func() { cancel(); <-done }()

	placed := event.New()
	placed.SetID("e1")
	placed.SetSource("/shop")
	placed.SetType("order.placed")
	placed.SetExtension("correlationid", "order-1")
	if err := s.HandleEvent(ctx, placed); err != nil {
		fmt.Println(err)
		return
	}
	m := <-commands.Messages()
	_ = m.Ack()
	in, _ := s.Get(ctx, "order-1")
	fmt.Println(m.Event.Type(), m.Event.ID(), in.Status, in.State.Items)
	// Output: stock.reserve checkout/order-1/1/0 running 2
}
