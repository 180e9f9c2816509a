package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekredis "github.com/eventkit/eventkit/redis"
	goredis "github.com/redis/go-redis/v9"
)

// TestInvalidOptionsRefused checks that New fails on an invalid option
// value instead of replacing it with the default.
func TestInvalidOptionsRefused(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	testkit.InvalidOptionsRefused(t, func(o ekredis.Option) error {
		_, err := ekredis.New(c, o)
		return err
	}, testkit.CommonOptions[ekredis.Option]{WithMode: ekredis.WithMode, WithLogger: ekredis.WithLogger, WithCloseTimeout: ekredis.WithCloseTimeout},
		map[string]ekredis.Option{
			"WithMaxLen":           ekredis.WithMaxLen(-1),
			"WithClaimIdle":        ekredis.WithClaimIdle(0),
			"WithBlock":            ekredis.WithBlock(-time.Second),
			"WithDiscoverInterval": ekredis.WithDiscoverInterval(0),
		})
	if _, err := ekredis.New(nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("New(nil): %v, want ErrInvalidOption", err)
	}
	tr, err := ekredis.New(c, ekredis.WithMode(eventkit.Structured), ekredis.WithMaxLen(0))
	if err != nil {
		t.Fatalf("New with valid options: %v", err)
	}
	want := eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapPersistent | eventkit.CapFromStart | eventkit.CapBatchPublish |
		eventkit.CapStartAtTime | eventkit.CapStartAtPosition
	if got := eventkit.CapabilitiesOf(tr); got != want {
		t.Errorf("capabilities %s, want %s", got, want)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownTransportOptionRefused(t *testing.T) {
	tr, ns, ctx := setup(t)
	_, err := tr.Subscribe(ctx, ns+".x", eventkit.WithTransportOption(42))
	if !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Fatalf("Subscribe with an unknown transport option: %v, want ErrInvalidOption", err)
	}
}

func TestDial(t *testing.T) {
	addr := eventkittest.ServerAddr(t, "EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr, eventkittest.DialProbe)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := eventkittest.UniqueName("dial")
	prefix := "ektest:" + ns + ":"
	t.Cleanup(func() { deleteKeys(t, newClient(t), prefix) })
	tr, err := ekredis.Dial(ctx, "redis://"+addr+"/0", ekredis.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	s := testkit.Subscribe(t, ctx, tr, ns+".d")
	if err := tr.Publish(ctx, ns+".d", eventkittest.NewEvent("d-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-s.Messages():
		_ = m.Ack()
	case <-ctx.Done():
		t.Fatal("no message")
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := ekredis.Dial(ctx, "http://"+addr); err == nil {
		t.Error("Dial with an http URL succeeded")
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := ekredis.Dial(cctx, "redis://"+addr); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestPrivateGroupDestroyedOnClose checks that closing a subscription
// without a group removes its private group from the stream.
func TestPrivateGroupDestroyedOnClose(t *testing.T) {
	tr, ns, ctx := setup(t)
	c := newClient(t)
	tp := ns + ".private"
	s := testkit.Subscribe(t, ctx, tr, tp)
	groups, err := c.XInfoGroups(ctx, tr.StreamKey(tp)).Result()
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups while subscribed: %v, %v", groups, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	groups, err = c.XInfoGroups(ctx, tr.StreamKey(tp)).Result()
	if err != nil || len(groups) != 0 {
		t.Fatalf("groups after Close: %v, %v", groups, err)
	}
}
