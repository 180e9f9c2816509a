package kafka_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Publish and subscribe through a consumer group. The example runs on
// franz-go's in-process kfake cluster; give Dial a real cluster's brokers
// ("host1:9092,host2:9092") instead.
func Example() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1))
	defer cluster.Close()
	ctx := context.Background()

	tr, err := kafka.Dial(ctx, cluster.ListenAddrs()[0],
		kafka.WithTopicCreation(8, 1, nil), // 8 partitions, replication factor 1
		kafka.WithHeartbeatInterval(100*time.Millisecond),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()

	sub, err := tr.Subscribe(ctx, "orders.*.created", eventkit.WithGroup("billing"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	ev := eventkittest.NewEvent("order-1")
	ev.SetExtension("partitionkey", "customer-42") // the record key: one partition per customer
	if err := tr.Publish(ctx, "orders.eu.created", ev); err != nil {
		fmt.Println(err)
		return
	}
	m := <-sub.Messages()
	fmt.Println(m.Topic, m.Event.ID(), m.Attempt)
	_ = m.Ack() // committed with the next commit, never past an unacked record
	// Output: orders.eu.created order-1 1
}

// A consume-transform-produce loop whose outputs and input offsets commit
// in one Kafka transaction.
func ExampleTransport_NewTransactor() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1))
	defer cluster.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr, _ := kafka.Dial(ctx, cluster.ListenAddrs()[0], kafka.WithTopicCreation(4, 1, nil),
		kafka.WithHeartbeatInterval(100*time.Millisecond))
	defer tr.Close()

	_ = tr.Publish(ctx, "payments.in", eventkittest.NewEvent("p-1"))
	x, _ := tr.NewTransactor("payments.in", "enricher", "enricher-0",
		func(ctx context.Context, m *eventkit.Message, out eventkit.Publisher) error {
			enriched := eventkittest.NewEvent("enriched-" + m.Event.ID())
			return out.Publish(ctx, "payments.enriched", enriched)
		}, kafka.WithTxFromStart())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()

	sub, _ := tr.Subscribe(ctx, "payments.enriched", eventkit.FromStart()) // read_committed
	defer sub.Close()
	m := <-sub.Messages()
	fmt.Println(m.Event.ID())
	_ = m.Ack()
	cancel()
	fmt.Println(<-done)
	// Output:
	// enriched-p-1
	// <nil>
}
