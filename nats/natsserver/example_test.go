package natsserver_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
)

// An embedded JetStream server with no listener, a transport on an
// in-process connection, one event published and consumed by a group.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "example-nats-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := natsserver.Run(natsserver.WithStoreDir(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	nc, err := srv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	ctx := context.Background()
	sub, err := tr.Subscribe(ctx, "orders.*.created", eventkit.WithGroup("billing"))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	e := event.New()
	e.SetID("order-1")
	e.SetSource("urn:shop")
	e.SetType("shop.order.created")
	_ = e.SetData("application/json", map[string]any{"total": 42})
	if err := tr.Publish(ctx, "orders.eu.created", e); err != nil {
		log.Fatal(err)
	}

	m := <-sub.Messages()
	fmt.Println(m.Topic, m.Event.ID(), m.Attempt, string(m.Event.Data()))
	_ = m.Ack()
	// Output: orders.eu.created order-1 1 {"total":42}
}
