package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
)

func amqpSystems() []system {
	return []system{
		{"eventkit amqp", eventkitAMQPRound},
		{"raw amqp091-go", rawAMQPRound},
	}
}

func amqpURL() string { return env("EVENTKIT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/") }

func deleteAMQP(exchange string, queues ...string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	_ = ch.ExchangeDelete(exchange, false, false)
}

// eventkitAMQPRound: the group's queue is created by a first Subscribe, the
// events are published in batches (each Publish waits for its confirms),
// then the group consumes and acks them all.
func eventkitAMQPRound(n, batch int) (result, error) {
	ctx := context.Background()
	tp := uniqueTopic()
	exchange, group := "ekbench-"+tp, "ekbench-"+tp
	defer deleteAMQP(exchange, group)
	tr, err := ekamqp.Dial(ctx, amqpURL(), ekamqp.WithExchange(exchange))
	if err != nil {
		return result{}, err
	}
	defer tr.Close()
	s, err := tr.Subscribe(ctx, tp, eventkit.WithGroup(group))
	if err != nil {
		return result{}, err
	}
	_ = s.Close()
	events := make([]event.Event, n)
	for i := range events {
		events[i] = benchEvent(i)
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		if err := tr.Publish(ctx, tp, events[i:min(i+batch, n)]...); err != nil {
			return result{}, err
		}
	}
	produced := time.Since(start)
	start = time.Now()
	sub, err := tr.Subscribe(ctx, tp, eventkit.WithGroup(group), eventkit.WithBuffer(batch))
	if err != nil {
		return result{}, err
	}
	for i := 0; i < n; i++ {
		m, ok := <-sub.Messages()
		if !ok {
			return result{}, fmt.Errorf("subscription ended")
		}
		if err := m.Ack(); err != nil {
			return result{}, err
		}
	}
	consumed := time.Since(start)
	_ = sub.Close()
	return timed(n, produced, consumed), nil
}

// rawAMQPRound does the same with amqp091-go: a quorum queue bound to a
// topic exchange, persistent messages with the same headers published in
// batches with deferred confirms, then consumed (the consumer declaring and
// binding its queue first, as Subscribe does) with the same prefetch and
// acked one by one.
func rawAMQPRound(n, batch int) (result, error) {
	ctx := context.Background()
	tp := uniqueTopic()
	exchange, queue := "rawbench-"+tp, "rawbench-"+tp
	defer deleteAMQP(exchange, queue)
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return result{}, err
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return result{}, err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return result{}, err
	}
	if err := ch.QueueBind(queue, tp, exchange, false, nil); err != nil {
		return result{}, err
	}
	if err := ch.Confirm(false); err != nil {
		return result{}, err
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		dcs := make([]*amqp.DeferredConfirmation, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, tp, false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: payload,
				Headers: amqp.Table{"cloudEvents_specversion": "1.0", "cloudEvents_id": "e-" + strconv.Itoa(j),
					"cloudEvents_source": "urn:bench", "cloudEvents_type": "bench.event"}})
			if err != nil {
				return result{}, err
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return result{}, fmt.Errorf("not confirmed: %v", err)
			}
		}
	}
	produced := time.Since(start)
	start = time.Now()
	cch, err := conn.Channel()
	if err != nil {
		return result{}, err
	}
	// A consumer declares and binds its queue as it starts, as eventkit's
	// Subscribe does.
	if _, err := cch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return result{}, err
	}
	if err := cch.QueueBind(queue, tp, exchange, false, nil); err != nil {
		return result{}, err
	}
	if err := cch.Qos(batch, 0, false); err != nil {
		return result{}, err
	}
	deliveries, err := cch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return result{}, err
	}
	for i := 0; i < n; i++ {
		d := <-deliveries
		if _, ok := d.Headers["cloudEvents_id"].(string); !ok {
			return result{}, fmt.Errorf("message without id")
		}
		if err := d.Ack(false); err != nil {
			return result{}, err
		}
	}
	consumed := time.Since(start)
	return timed(n, produced, consumed), nil
}
