package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekredis "github.com/eventkit/eventkit/redis"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if isChild() {
		runChild()
		return
	}
	goleak.VerifyTestMain(m)
}

const claimIdle = 2 * time.Second

// newClient returns a client of the test server (skipping without one),
// closed when the test ends.
func newBenchClient(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr})
}

// mustNew returns a transport on c, or fails the test.
func mustNew(t *testing.T, c goredis.UniversalClient, opts ...ekredis.Option) *ekredis.Transport {
	t.Helper()
	tr, err := ekredis.New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func newClient(t *testing.T) *goredis.Client {
	t.Helper()
	addr := eventkittest.ServerAddr(t, "EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr, eventkittest.DialProbe)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// deleteKeys removes every key under prefix.
func deleteKeys(t *testing.T, c *goredis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
	}
}

// newTestTransport returns a transport on the test server whose keys,
// under a prefix of ns, are deleted when t ends.
func newTestTransport(t *testing.T, ns string, opts ...ekredis.Option) *ekredis.Transport {
	return newTestTransportOn(t, newClient(t), ns, opts...)
}

// newTestTransportOn makes a transport on c whose keys are removed at the
// end of the test.
func newTestTransportOn(t *testing.T, c *goredis.Client, ns string, opts ...ekredis.Option) *ekredis.Transport {
	prefix := "ektest:" + ns + ":"
	t.Cleanup(func() { deleteKeys(t, c, prefix) })
	all := append([]ekredis.Option{
		ekredis.WithPrefix(prefix),
		ekredis.WithClaimIdle(claimIdle),
		ekredis.WithBlock(200 * time.Millisecond),
		ekredis.WithDiscoverInterval(200 * time.Millisecond),
	}, opts...)
	return mustNew(t, c, all...)
}

var features = eventkittest.Features{
	Wildcards:           true,
	ConsumerGroups:      true,
	GroupBalance:        true,
	Redelivery:          true,
	AttemptCount:        true,
	NackDelay:           true,
	Persistent:          true,
	RedeliverUnacked:    true,
	AckTimeout:          claimIdle,
	ExtensionsAsStrings: true,
	SeekMovesMembers:    true,
}

// TestTransport runs the conformance suite in binary and structured mode.
func TestTransport(t *testing.T) {
	f := features
	f.Restart = restartable
	testkit.TestModes(t, f, func(t *testing.T, ns string, mode eventkit.Mode) testkit.PubSub {
		return newTestTransport(t, ns, ekredis.WithMode(mode))
	})
}

// restartable is the restart feature: transports on a redis-server of the
// test's own (append-only file, fsync on every write), which it restarts.
func restartable(t *testing.T) (eventkittest.Factory, func()) {
	srv := eventkittest.StartServerProcess(t, eventkittest.ServerCommand{Program: "redis-server",
		Args: func(port int, dir string) []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"}
		}})
	return func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		tr := newTestTransportOn(t, c, ns)
		return tr, tr
	}, srv.Restart
}
