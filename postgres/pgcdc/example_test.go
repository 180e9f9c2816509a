package pgcdc_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/postgres/pgcdc"
)

// A CDC source streams the changes of public.orders to a publisher (here the
// in-process bus) as Debezium-compatible CloudEvents on the topic
// "shop.public.orders", until the process is interrupted.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	bus := memory.New()
	defer bus.Close()
	src, err := pgcdc.New("postgres://cdc@127.0.0.1:5432/shop", bus,
		pgcdc.WithName("shop"), pgcdc.WithTables("public.orders"))
	if err != nil {
		log.Fatal(err)
	}
	if err := src.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
