package redis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	ekredis "github.com/eventkit/eventkit/redis"
	goredis "github.com/redis/go-redis/v9"
)

// A consumer group reads a topic's stream; Ack is XACK.
func Example() {
	// Compiled, not run by go test (it needs a server): TestTransport
	// covers the same path.
	addr := eventkittest.Env("EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr)
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	defer client.Close()
	prefix := eventkittest.UniqueName("example:") + ":"
	tr, err := ekredis.New(client, ekredis.WithPrefix(prefix), ekredis.WithClaimIdle(time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		_ = tr.Close()
		client.Del(context.Background(), tr.StreamKey("orders.created"), tr.RegistryKey())
	}()

	ctx := context.Background()
	sub, err := tr.Subscribe(ctx, "orders.created", eventkit.WithGroup("billing"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := tr.Publish(ctx, "orders.created", eventkittest.NewEvent("o-1")); err != nil {
		fmt.Println(err)
		return
	}
	m := <-sub.Messages()
	fmt.Println("got", m.Topic, m.Attempt)
	_ = m.Ack()
}
