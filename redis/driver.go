package redis

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
	goredis "github.com/redis/go-redis/v9"
)

// capabilities are what the Redis streams driver guarantees.
const capabilities = eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack |
	eventkit.CapNackDelay | eventkit.CapAttemptCount | eventkit.CapPersistent |
	eventkit.CapFromStart | eventkit.CapBatchPublish | eventkit.CapStartAtTime | eventkit.CapStartAtPosition

// drv is the Redis streams driver: a driver.Publisher and a
// driver.Subscriber in one value.
type drv struct {
	client     goredis.UniversalClient
	o          options
	ownsClient bool

	registered sync.Map // topic -> struct{}: recorded in the registry set
}

func (d *drv) streamKey(name string) string { return d.o.prefix + name }

func (d *drv) registryKey() string { return d.o.prefix + "#topics" }

func (d *drv) Capabilities() eventkit.Capabilities { return capabilities }

// SendBatch appends the events to the topic's stream in one pipeline.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	key := d.streamKey(name)
	_, known := d.registered.Load(name)
	var reg *goredis.IntCmd
	_, err := d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if !known {
			// Recorded before the first XADD, so that a pattern subscription
			// that does not see the topic yet sees none of its entries.
			reg = p.SAdd(ctx, d.registryKey(), name)
		}
		for i := range events {
			vals, err := encode(events[i], d.o.Mode == eventkit.Structured)
			if err != nil {
				return fmt.Errorf("redis: publish: encode event %q: %w", events[i].ID(), err)
			}
			args := &goredis.XAddArgs{Stream: key, Values: vals}
			if d.o.maxLen > 0 {
				args.MaxLen, args.Approx = d.o.maxLen, true
			}
			p.XAdd(ctx, args)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: publish to %q: %w", key, err)
	}
	if reg != nil && reg.Err() == nil {
		d.registered.Store(name, struct{}{})
	}
	return nil
}

// OpenSubscription creates the subscription's group on the streams its
// pattern covers now, and starts keeping its held entries claimed.
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if err := transport.NoSubscribeOptions("redis", cfg.Options); err != nil {
		return nil, err
	}
	startID, err := groupStart(cfg)
	if err != nil {
		return nil, err
	}
	s := newSubscription(d, pattern, cfg, startID)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	s.startKeeper()
	return s, nil
}

// Close closes the client if Dial made it.
func (d *drv) Close() error {
	if d.ownsClient {
		return d.client.Close()
	}
	return nil
}
