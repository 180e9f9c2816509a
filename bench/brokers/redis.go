package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	goredis "github.com/redis/go-redis/v9"

	"github.com/eventkit/eventkit"
	ekredis "github.com/eventkit/eventkit/redis"
)

func redisSystems() []system {
	return []system{
		{"eventkit redis", eventkitRedisRound},
		{"raw go-redis", rawRedisRound},
		{"watermill-redisstream", watermillRedisRound},
	}
}

func redisClient() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: env("EVENTKIT_REDIS_ADDR", "127.0.0.1:6379")})
}

var round int

func uniqueTopic() string {
	round++
	return fmt.Sprintf("bench.%d.%d", time.Now().UnixNano(), round)
}

func benchEvent(i int) event.Event {
	e := event.New()
	e.SetID("e-" + strconv.Itoa(i))
	e.SetSource("urn:bench")
	e.SetType("bench.event")
	_ = e.SetData("application/json", payload)
	return e
}

func eventkitRedisRound(n, batch int) (result, error) {
	ctx := context.Background()
	c := redisClient()
	defer c.Close()
	tr, err := ekredis.New(c, ekredis.WithPrefix("ekbench:"), ekredis.WithBlock(50*time.Millisecond))
	if err != nil {
		return result{}, err
	}
	defer tr.Close()
	tp := uniqueTopic()
	defer c.Del(ctx, tr.StreamKey(tp))
	defer c.SRem(ctx, tr.RegistryKey(), tp)
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
	sub, err := tr.Subscribe(ctx, tp, eventkit.WithGroup("bench"), eventkit.FromStart(), eventkit.WithBuffer(batch))
	if err != nil {
		return result{}, err
	}
	for i := 0; i < n; i++ {
		m, ok := <-sub.Messages()
		if !ok {
			return result{}, fmt.Errorf("subscription ended: %v", sub.Err())
		}
		if err := m.Ack(); err != nil {
			return result{}, err
		}
	}
	if err := sub.Close(); err != nil { // flushes the acks
		return result{}, err
	}
	return timed(n, produced, time.Since(start)), nil
}

// rawRedisRound writes the same fields as eventkit's binary mode with
// pipelined XADDs, and reads them with XREADGROUP, one XACK per batch.
func rawRedisRound(n, batch int) (result, error) {
	ctx := context.Background()
	c := redisClient()
	defer c.Close()
	key := "rawbench:" + uniqueTopic()
	defer c.Del(ctx, key)
	start := time.Now()
	for i := 0; i < n; i += batch {
		_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j := i; j < min(i+batch, n); j++ {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{
					"ce_specversion", "1.0", "ce_id", "e-" + strconv.Itoa(j), "ce_source", "urn:bench", "ce_type", "bench.event",
					"content-type", "application/json", "data", payload}})
			}
			return nil
		})
		if err != nil {
			return result{}, err
		}
	}
	produced := time.Since(start)
	start = time.Now()
	if err := c.XGroupCreate(ctx, key, "bench", "0").Err(); err != nil {
		return result{}, err
	}
	got := 0
	for got < n {
		res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "bench", Consumer: "c1", Streams: []string{key, ">"}, Count: int64(batch), Block: time.Second}).Result()
		if err != nil {
			return result{}, err
		}
		for _, st := range res {
			ids := make([]string, 0, len(st.Messages))
			for _, m := range st.Messages {
				if _, ok := m.Values["data"].(string); !ok {
					return result{}, fmt.Errorf("entry %s has no data", m.ID)
				}
				ids = append(ids, m.ID)
			}
			if err := c.XAck(ctx, key, "bench", ids...).Err(); err != nil {
				return result{}, err
			}
			got += len(ids)
		}
	}
	return timed(n, produced, time.Since(start)), nil
}

func watermillRedisRound(n, batch int) (result, error) {
	ctx := context.Background()
	c := redisClient()
	defer c.Close()
	tp := "wmbench:" + uniqueTopic()
	defer c.Del(ctx, tp)
	logger := watermill.NopLogger{}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: c}, logger)
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage("e-"+strconv.Itoa(i), payload)
		msgs[i].Metadata.Set("ce_type", "bench.event")
		msgs[i].Metadata.Set("ce_source", "urn:bench")
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		if err := pub.Publish(tp, msgs[i:min(i+batch, n)]...); err != nil {
			return result{}, err
		}
	}
	produced := time.Since(start)
	start = time.Now()
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: c, ConsumerGroup: "bench", OldestId: "0", BlockTime: 100 * time.Millisecond}, logger)
	if err != nil {
		return result{}, err
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, tp)
	if err != nil {
		return result{}, err
	}
	for i := 0; i < n; i++ {
		m := <-ch
		m.Ack()
	}
	consumed := time.Since(start)
	// Close before deleting the stream: the subscriber's claim loop would
	// create it again.
	_ = sub.Close()
	_ = pub.Close()
	c.Del(ctx, tp)
	return timed(n, produced, consumed), nil
}

// sweepRedis deletes the streams that Watermill's subscribers created again
// while closing (their claim loops outlive Close for a moment).
func sweepRedis() {
	time.Sleep(time.Second)
	ctx := context.Background()
	c := redisClient()
	defer c.Close()
	iter := c.Scan(ctx, 0, "wmbench:*", 1000).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}
