// Command amqp is the minimal program of the AMQP 0-9-1 transport.
package main

import (
	"context"
	"log"

	"github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/bench/binsize/internal/run"
)

func main() {
	t, err := amqp.Dial(context.Background(), "amqp://guest:guest@localhost:5672/")
	if err != nil {
		log.Fatal(err)
	}
	run.PubSub(t)
}
