// Command cehttp is the minimal program of the CloudEvents HTTP binding: a
// publisher, and a handler that forwards what it receives to it.
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/eventkit/eventkit/bench/binsize/internal/run"
	"github.com/eventkit/eventkit/cehttp"
)

func main() {
	p, err := cehttp.NewPublisher("http://localhost:8080/")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	run.Publish(context.Background(), p)
	log.Fatal(http.ListenAndServe("localhost:8081", cehttp.NewHandler(p)))
}
