package nats_test

import (
	"log"
	"os"
	"time"

	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
)

// A transport on a NATS server or cluster: only the connection changes.
func ExampleNew() {
	url := os.Getenv("EVENTKIT_NATS_URL") // e.g. "nats://127.0.0.1:4222"
	if url == "" {
		return
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	tr, err := eknats.New(nc,
		eknats.WithStream(eknats.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3}),
		eknats.WithAckWait(time.Minute),
		eknats.WithMaxDeliver(10),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
}
