package redis_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekredis "github.com/eventkit/eventkit/redis"
	goredis "github.com/redis/go-redis/v9"
)

// The crash test re-executes the test binary as a consumer process; these
// variables tell it what to do.
const (
	envChild  = "EVENTKIT_REDIS_CHILD"
	envPrefix = "EVENTKIT_REDIS_CHILD_PREFIX"
	envTopic  = "EVENTKIT_REDIS_CHILD_TOPIC"
	envGroup  = "EVENTKIT_REDIS_CHILD_GROUP"
	envTake   = "EVENTKIT_REDIS_CHILD_TAKE"
)

func isChild() bool { return os.Getenv(envChild) != "" }

// runChild subscribes to the group, takes some messages without settling
// them, reports their ids on stdout and waits to be killed.
func runChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	c := goredis.NewClient(&goredis.Options{Addr: eventkittest.Env("EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr)})
	tr, err := ekredis.New(c, ekredis.WithPrefix(os.Getenv(envPrefix)))
	if err != nil {
		fail(err)
	}
	take, _ := strconv.Atoi(os.Getenv(envTake))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, os.Getenv(envTopic), eventkit.WithGroup(os.Getenv(envGroup)), eventkit.FromStart(), eventkit.WithBuffer(take))
	if err != nil {
		fail(err)
	}
	var ids []string
	for len(ids) < take {
		select {
		case m := <-s.Messages():
			ids = append(ids, m.Event.ID()) // never settled
		case <-time.After(30 * time.Second):
			fail(fmt.Errorf("got %d of %d messages", len(ids), take))
		}
	}
	fmt.Println("HELD " + strings.Join(ids, " "))
	select {} // until SIGKILL
}

// TestCrashedConsumerEntriesReclaimed kills a consumer process with SIGKILL
// while it holds pending entries; a second consumer of the group reclaims
// them after the claim idle time and handles every event: nothing is lost.
func TestCrashedConsumerEntriesReclaimed(t *testing.T) {
	c := newClient(t)
	ns := eventkittest.UniqueName("crash")
	prefix := "ektest:" + ns + ":"
	t.Cleanup(func() { deleteKeys(t, c, prefix) })
	tp, group := ns+".orders", ns+"-workers"
	const total, take = 30, 10

	pub := mustNew(t, c, ekredis.WithPrefix(prefix))
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events := make([]event.Event, total)
	for i := range events {
		events[i] = eventkittest.NewEvent("crash-" + strconv.Itoa(i))
	}
	if err := pub.Publish(ctx, tp, events...); err != nil {
		t.Fatal(err)
	}

	child := eventkittest.StartChild(t, "^$", envChild+"=1", envPrefix+"="+prefix, envTopic+"="+tp, envGroup+"="+group, envTake+"="+strconv.Itoa(take))
	// The child gives up after 30s without a message: this bound is longer
	// than its own.
	held := strings.Fields(child.WaitLine(t, "HELD ", take*30*time.Second+time.Minute))
	if len(held) != take {
		t.Fatalf("child reported %d held messages, want %d", len(held), take)
	}
	key := pub.StreamKey(tp)
	pending, err := c.XPending(ctx, key, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count < take {
		t.Fatalf("before the kill, the group has %d pending entries, want at least %d", pending.Count, take)
	}
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}

	// A second consumer of the group, in this process.
	tr := mustNew(t, c, ekredis.WithPrefix(prefix), ekredis.WithClaimIdle(time.Second), ekredis.WithBlock(200*time.Millisecond))
	s := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithGroup(group))
	got := map[string]int{}
	reclaimed := map[string]bool{}
	for len(got) < total {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				t.Fatalf("subscription ended: %v", s.Err())
			}
			got[m.Event.ID()]++
			if m.Attempt > 1 {
				reclaimed[m.Event.ID()] = true
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("after the kill, got %d of %d events", len(got), total)
		}
	}
	for _, id := range held {
		if !reclaimed[id] {
			t.Errorf("event %s, held by the killed consumer, was not delivered as a reclaimed redelivery (Attempt > 1)", id)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	pending, err = c.XPending(ctx, key, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 0 {
		t.Errorf("after handling everything, %d entries are still pending", pending.Count)
	}
}
