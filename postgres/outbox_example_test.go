package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Write events in the business transaction; a relay publishes them once the
// transaction committed.
func ExampleOutbox() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, eventkittest.DefaultPostgresURL)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	ob, err := postgres.NewOutbox(pool)
	if err != nil {
		log.Fatal(err)
	}
	if err := ob.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	placed := eventkittest.NewEvent("order-42-placed")
	placed.SetSubject("order/42") // the key: events of one order keep their order
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE orders SET state = 'placed' WHERE id = 42`); err != nil {
			return err
		}
		return ob.Write(ctx, tx, "orders.placed", placed)
	})
	if err != nil {
		log.Fatal(err)
	}

	bus := memory.New() // any eventkit.Publisher
	defer bus.Close()
	relay, err := outbox.NewRelay(ob, bus, outbox.WithLeaseTTL(15*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	_ = relay.Run(runCtx) // in a service: until shutdown
}
