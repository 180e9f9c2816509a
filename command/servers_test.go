package command_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit/natskit"
	eknats "github.com/eventkit/eventkit/nats"
	ekredis "github.com/eventkit/eventkit/redis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
)

// natsEnv is a JetStream transport with automatic streams on the server of
// EVENTKIT_NATS_URL, and unique command and reply prefixes.
type natsEnv struct {
	nc              *nats.Conn
	tr              *eknats.Transport
	prefix, replies string
}

// newNATSEnv connects to the server (skipping tb when it does not answer);
// the transport and the connection are closed when tb ends.
func newNATSEnv(tb testing.TB, storage jetstream.StorageType) natsEnv {
	tb.Helper()
	nc := natskit.Conn(tb)
	tr, err := eknats.New(nc, eknats.WithAutoStreams(eknats.StreamConfig{Storage: storage, MaxAge: time.Hour}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return natsEnv{nc: nc, tr: tr, prefix: eventkittest.UniqueName("cmd"), replies: eventkittest.UniqueName("rpl")}
}

// deleteStreams deletes the automatic streams of the prefixes, and reports
// each that could not be deleted.
func (e natsEnv) deleteStreams(tb testing.TB, prefixes ...string) {
	tb.Helper()
	for _, p := range prefixes {
		if err := e.tr.JetStream().DeleteStream(context.Background(), "EVENTKIT_"+p); err != nil {
			tb.Errorf("delete the stream of %s: %v", p, err)
		}
	}
}

// dialRedis returns a Redis Streams transport on the server of
// EVENTKIT_REDIS_ADDR (skipping tb when it does not answer), with a unique
// key prefix; when tb ends it is closed and its keys are deleted.
func dialRedis(tb testing.TB, opts ...ekredis.Option) *ekredis.Transport {
	tb.Helper()
	addr := eventkittest.ServerAddr(tb, "EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr, eventkittest.DialProbe)
	keyPrefix := eventkittest.UniqueName("ekcmd") + ":"
	tr, err := ekredis.Dial(context.Background(), "redis://"+addr, append([]ekredis.Option{ekredis.WithPrefix(keyPrefix)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = tr.Close()
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer c.Close()
		iter := c.Scan(context.Background(), 0, keyPrefix+"*", 500).Iterator()
		for iter.Next(context.Background()) {
			c.Del(context.Background(), iter.Val())
		}
	})
	return tr
}
