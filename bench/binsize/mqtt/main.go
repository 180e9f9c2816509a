// Command mqtt is the minimal program of the MQTT transport.
package main

import (
	"context"
	"log"

	"github.com/eventkit/eventkit/bench/binsize/internal/run"
	"github.com/eventkit/eventkit/mqtt"
)

func main() {
	t, err := mqtt.Dial(context.Background(), "mqtt://localhost:1883")
	if err != nil {
		log.Fatal(err)
	}
	run.PubSub(t)
}
