// Command postgres is the minimal program of the PostgreSQL queue transport.
package main

import (
	"context"
	"log"

	"github.com/eventkit/eventkit/bench/binsize/internal/run"
	"github.com/eventkit/eventkit/postgres/pgqueue"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/postgres")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	q, err := pgqueue.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	run.PubSub(q)
}
