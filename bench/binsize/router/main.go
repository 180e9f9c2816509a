// Command router is the memory transport with a Router and the core
// reliability middleware (dead letter, dedup, retry, timeout, recover): the
// shape of the README's tour, with nothing from the middleware subpackages.
package main

import (
	"context"
	"log"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/bench/binsize/internal/run"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
)

func main() {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus)
	r.Use(
		middleware.DeadLetter(bus),
		middleware.Dedup(memory.NewDedupStore()),
		middleware.Retry(),
		middleware.Timeout(time.Second),
		middleware.Recover(),
	)
	done := make(chan struct{})
	if err := r.HandleFunc("binsize", func(context.Context, *eventkit.Message) error {
		close(done)
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	run.Publish(context.Background(), bus)
	<-done
	if err := r.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
}
