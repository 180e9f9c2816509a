package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// orderLine is the payload of the benchmark's events.
type orderLine struct {
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

// BenchmarkProjectionBatch projects events from a Router into a
// PostgreSQL read model (an idempotent insert per event, keyed by the
// event id), in the same run: one message at a time (one INSERT, one
// transaction each) against a batch route (Router.HandleBatch: one
// multi-row INSERT in one transaction per batch of up to 100). The events
// are published to the memory bus before the timer starts and wait in the
// subscription's buffer, so that the figures measure the projection alone.
//
//	go test -run '^$' -bench ProjectionBatch -benchtime 5000x ./postgres
func BenchmarkProjectionBatch(b *testing.B) {
	b.Run("one-at-a-time", func(b *testing.B) {
		benchProjection(b, func(pool *pgxpool.Pool, table string, r *eventkit.Router, projected func(int)) error {
			insert := "INSERT INTO " + table + " (event_id, order_id, amount) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING"
			return r.HandleFunc("orders.lines", func(ctx context.Context, m *eventkit.Message) error {
				var l orderLine
				if err := json.Unmarshal(m.Event.Data(), &l); err != nil {
					return eventkit.Permanent(err)
				}
				if _, err := pool.Exec(ctx, insert, m.Event.ID(), l.OrderID, l.Amount); err != nil {
					return err
				}
				projected(1)
				return nil
			})
		})
	})
	b.Run("batch-100", func(b *testing.B) {
		benchProjection(b, func(pool *pgxpool.Pool, table string, r *eventkit.Router, projected func(int)) error {
			insert := "INSERT INTO " + table + " (event_id, order_id, amount) " +
				"SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT (event_id) DO NOTHING"
			return r.HandleBatchFunc("orders.lines", func(ctx context.Context, msgs []*eventkit.Message) error {
				ids, orders, amounts := make([]string, 0, len(msgs)), make([]string, 0, len(msgs)), make([]int64, 0, len(msgs))
				var failed eventkit.BatchError
				for _, m := range msgs {
					var l orderLine
					if err := json.Unmarshal(m.Event.Data(), &l); err != nil {
						failed.Fail(m, eventkit.Permanent(err))
						continue
					}
					ids, orders, amounts = append(ids, m.Event.ID()), append(orders, l.OrderID), append(amounts, l.Amount)
				}
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, insert, ids, orders, amounts)
					return err
				})
				if err != nil {
					return err // every message of the batch is nacked
				}
				projected(len(ids))
				return failed.Err()
			}, eventkit.BatchSize(100), eventkit.BatchWait(5*time.Millisecond))
		})
	})
}

// benchProjection publishes b.N events to a router whose route (added by
// route) projects them into a table of its own and reports each commit to
// projected; it waits until every event is projected and reports events/s.
func benchProjection(b *testing.B, route func(pool *pgxpool.Pool, table string, r *eventkit.Router, projected func(n int)) error) {
	ctx := context.Background()
	pool, schema := esTestPool(b)
	table := pgx.Identifier{schema, "order_lines"}.Sanitize()
	if _, err := pool.Exec(ctx, "CREATE TABLE "+table+" (event_id text PRIMARY KEY, order_id text NOT NULL, amount bigint NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	bus := memory.New()
	defer bus.Close()
	var count atomic.Int64
	all := make(chan struct{})
	projected := func(n int) {
		if count.Add(int64(n)) == int64(b.N) {
			close(all)
		}
	}
	// The route holds its first message (or batch) until the events are
	// all published: they wait in a buffer that holds them all.
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	defer open()
	r := eventkit.NewRouter(&gatedSubscriber{Subscriber: bus, gate: gate, buffer: b.N})
	if err := route(pool, table, r, projected); err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.Start(rctx); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		e := eventkittest.NewEvent(fmt.Sprintf("line-%d", i))
		data, _ := json.Marshal(orderLine{OrderID: fmt.Sprintf("o%d", i%1000), Amount: int64(i)})
		if err := e.SetData("application/json", data); err != nil {
			b.Fatal(err)
		}
		if err := bus.Publish(rctx, "orders.lines", e); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	open()
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d events projected", count.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	cancel()
	if err := r.Wait(); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != int64(b.N) {
		b.Fatalf("the read model holds %d rows (%v), want %d", n, err, b.N)
	}
}

// gatedSubscriber subscribes with a buffer of buffer messages, and its
// subscriptions deliver nothing until gate is closed.
type gatedSubscriber struct {
	eventkit.Subscriber
	gate   chan struct{}
	buffer int
}

func (g *gatedSubscriber) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	s, err := g.Subscriber.Subscribe(ctx, pattern, append(opts, eventkit.WithBuffer(g.buffer))...)
	if err != nil {
		return nil, err
	}
	return &gatedSubscription{Subscription: s, gate: g.gate}, nil
}

type gatedSubscription struct {
	eventkit.Subscription
	gate chan struct{}
}

// Messages waits until the gate opens (the Router calls it from its
// workers).
func (g *gatedSubscription) Messages() <-chan *eventkit.Message {
	<-g.gate
	return g.Subscription.Messages()
}
