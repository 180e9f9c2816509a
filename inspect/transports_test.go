package inspect_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/inspect"
	"github.com/eventkit/eventkit/kafka"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/postgres/pgqueue"
	ekpulsar "github.com/eventkit/eventkit/pulsar"
	ekredis "github.com/eventkit/eventkit/redis"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// The read and replay tests on every persistent transport, against the
// servers of the EVENTKIT_* variables (skipped when one does not answer,
// failed under CI=true).

// clockCut waits until the clock has moved past a millisecond boundary
// after every event published so far (brokers that keep milliseconds
// would otherwise put events on both sides of it in one millisecond), and
// returns that boundary: every event published from now on is stored at
// or after it.
func clockCut() time.Time {
	cut := time.Now().Truncate(time.Millisecond).Add(5 * time.Millisecond)
	for time.Now().Before(cut.Add(5 * time.Millisecond)) {
		time.Sleep(time.Millisecond) // the clock, not a result, is awaited
	}
	return cut
}

// transportEnv makes an env on a transport opened by open.
func transportEnv(t *testing.T, open func(t *testing.T, ns string) pubSub, group bool, adjust ...func(*env)) *env {
	ns := strings.ReplaceAll(eventkittest.UniqueName("insp"), "-", "_")
	tr := open(t, ns)
	t.Cleanup(func() { _ = tr.Close() })
	e := &env{pub: tr, sub: tr, ns: ns, cut: clockCut, idle: time.Second}
	if group {
		e.group = inspect.ThrowAwayGroup
	}
	for _, f := range adjust {
		f(e)
	}
	return e
}

type pubSub = interface {
	eventkit.Publisher
	eventkit.Subscriber
}

func TestReadReplayNATS(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	testReadReplay(t, func(t *testing.T) *env {
		return transportEnv(t, func(t *testing.T, ns string) pubSub {
			tr, err := eknats.Dial(context.Background(), url, eknats.WithStream(eknats.StreamConfig{
				Name: "INSP_" + strings.ToUpper(ns), Subjects: []string{ns + ".>"}, Storage: jetstream.MemoryStorage}))
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}, false)
	})
}

func TestReadReplayRedis(t *testing.T) {
	addr := eventkittest.ServerAddr(t, "EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr, eventkittest.DialProbe)
	testReadReplay(t, func(t *testing.T) *env {
		return transportEnv(t, func(t *testing.T, ns string) pubSub {
			tr, err := ekredis.Dial(context.Background(), "redis://"+addr, ekredis.WithPrefix(ns+":"))
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}, true, func(e *env) { e.unordered = true })
	})
}

func TestReadReplayPostgresQueue(t *testing.T) {
	url := eventkittest.Env("EVENTKIT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	testReadReplay(t, func(t *testing.T) *env {
		return transportEnv(t, func(t *testing.T, ns string) pubSub {
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, url)
			if err == nil {
				err = pool.Ping(ctx)
			}
			if err != nil {
				eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", url, err)
			}
			table := "ekinsp_" + strings.ToLower(ns)
			t.Cleanup(func() {
				_, _ = pool.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s_groups, %s_work, %s_claims", table, table, table, table))
				pool.Close()
			})
			q, err := pgqueue.New(pool, pgqueue.WithTable(table))
			if err != nil {
				t.Fatal(err)
			}
			return q
		}, true)
	})
}

func TestReadReplayKafkaRealBroker(t *testing.T) {
	brokers := eventkittest.Env("EVENTKIT_KAFKA_BROKERS", "127.0.0.1:9092")
	if err := eventkittest.DialProbe(strings.Split(brokers, ",")[0]); err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_KAFKA_BROKERS", brokers, err)
	}
	testReadReplay(t, func(t *testing.T) *env {
		return transportEnv(t, func(t *testing.T, ns string) pubSub {
			// One partition: a position (<partition>:<offset>) then
			// orders the whole topic, as paging with After needs.
			tr, err := kafka.Dial(context.Background(), brokers, kafka.WithTopicCreation(1, -1, nil))
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}, true, func(e *env) { e.unordered, e.idle = true, 2*time.Second }) // a group joins slowly
	})
}

func TestReadReplayPulsar(t *testing.T) {
	if os.Getenv("EVENTKIT_SKIP_PULSAR") != "" && !eventkittest.InCI() {
		t.Skip("EVENTKIT_SKIP_PULSAR is set")
	}
	url := eventkittest.ServerAddr(t, "EVENTKIT_PULSAR_URL", eventkittest.DefaultPulsarURL, eventkittest.DialProbe)
	testReadReplay(t, func(t *testing.T) *env {
		return transportEnv(t, func(t *testing.T, ns string) pubSub {
			tr, err := ekpulsar.Dial(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return tr
			// Without a group: a group's subscription is key-shared, in
			// order per key only.
		}, false, func(e *env) { e.single, e.keyOrdered = true, true })
	})
}
