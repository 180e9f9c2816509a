package pgqueue_test

import (
	"context"
	"log"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres/pgqueue"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL queue as a transport, with a consumer group.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, eventkittest.DefaultPostgresURL)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	q, err := pgqueue.New(pool, pgqueue.WithVisibilityTimeout(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	sub, err := q.Subscribe(ctx, "orders.>", eventkit.WithGroup("billing"))
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := q.Publish(ctx, "orders.placed", eventkittest.NewEvent("order-42-placed")); err != nil {
		log.Fatal(err)
	}
	m := <-sub.Messages()
	_ = m.Ack()
}
