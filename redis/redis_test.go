package redis_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekredis "github.com/eventkit/eventkit/redis"
)

func setup(t *testing.T, opts ...ekredis.Option) (*ekredis.Transport, string, context.Context) {
	t.Helper()
	c := newClient(t)
	ns := eventkittest.UniqueName("ek")
	prefix := "ektest:" + ns + ":"
	t.Cleanup(func() { deleteKeys(t, c, prefix) })
	tr := mustNew(t, c, append([]ekredis.Option{ekredis.WithPrefix(prefix), ekredis.WithBlock(100 * time.Millisecond)}, opts...)...)
	t.Cleanup(func() { _ = tr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return tr, ns, ctx
}

// TestWireFormat checks the fields of an entry in binary and structured mode.
func TestWireFormat(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run("structured="+strconv.FormatBool(structured), func(t *testing.T) {
			var opts []ekredis.Option
			if structured {
				opts = append(opts, ekredis.WithStructured())
			}
			tr, ns, ctx := setup(t, opts...)
			c := newClient(t)
			ev := eventkittest.NewEvent("wire-1")
			ev.SetExtension("tenant", "acme")
			tp := ns + ".wire"
			if err := tr.Publish(ctx, tp, ev); err != nil {
				t.Fatal(err)
			}
			entries, err := c.XRange(ctx, tr.StreamKey(tp), "-", "+").Result()
			if err != nil || len(entries) != 1 {
				t.Fatalf("XRANGE = %v, %v", entries, err)
			}
			f := entries[0].Values
			if structured {
				if f["content-type"] != "application/cloudevents+json" || f["event"] == nil || len(f) != 2 {
					t.Fatalf("structured entry fields = %v", f)
				}
				return
			}
			want := map[string]string{"ce_specversion": "1.0", "ce_id": "wire-1", "ce_source": "https://eventkit.dev/test",
				"ce_type": "dev.eventkit.test", "ce_tenant": "acme", "content-type": "application/json", "data": `{"id":"wire-1"}`}
			for k, v := range want {
				if f[k] != v {
					t.Errorf("field %s = %v, want %q", k, f[k], v)
				}
			}
			if len(f) != len(want) {
				t.Errorf("entry has fields %v, want exactly %v", f, want)
			}
		})
	}
}

// TestMaxLen checks that streams are trimmed to about MaxLen entries.
func TestMaxLen(t *testing.T) {
	tr, ns, ctx := setup(t, ekredis.WithMaxLen(100))
	c := newClient(t)
	tp := ns + ".trim"
	for i := 0; i < 20; i++ {
		if err := tr.Publish(ctx, tp, eventkittest.NewEvents("trim-"+strconv.Itoa(i), 50)...); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.XLen(ctx, tr.StreamKey(tp)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n >= 1000 || n < 100 {
		t.Fatalf("after 1000 entries with MAXLEN ~100, the stream holds %d", n)
	}
}

// TestNackDelayLongerThanClaimIdle checks that a message nacked with a delay
// longer than the claim idle time is not reclaimed early by another member
// of its group: the nacking subscription keeps it claimed until the delay
// has passed, then delivers it with Attempt 2 from the pending list.
func TestNackDelayLongerThanClaimIdle(t *testing.T) {
	const idle, delay = 300 * time.Millisecond, 1500 * time.Millisecond
	tr, ns, ctx := setup(t, ekredis.WithClaimIdle(idle))
	tp, g := ns+".nack", ns+"-g"
	a := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithGroup(g))
	if err := tr.Publish(ctx, tp, eventkittest.NewEvent("n-1")); err != nil {
		t.Fatal(err)
	}
	m := <-a.Messages()
	// A second member joins once the first holds the message.
	b := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithGroup(g))
	start := time.Now()
	if err := m.NackAfter(errors.New("later"), delay); err != nil {
		t.Fatal(err)
	}
	var m2 *eventkit.Message
	select {
	case m2 = <-a.Messages():
	case m2 = <-b.Messages():
	case <-ctx.Done():
		t.Fatal("nacked message not redelivered")
	}
	if el := time.Since(start); el < delay {
		t.Fatalf("redelivered after %s, before the nack delay %s", el, delay)
	}
	if m2.Event.ID() != "n-1" || m2.Attempt != 2 {
		t.Fatalf("redelivery: id %q attempt %d, want n-1 attempt 2", m2.Event.ID(), m2.Attempt)
	}
	if err := m2.Ack(); err != nil {
		t.Fatal(err)
	}
	select {
	case m3 := <-a.Messages():
		t.Fatalf("unexpected delivery %q attempt %d", m3.Event.ID(), m3.Attempt)
	case m3 := <-b.Messages():
		t.Fatalf("unexpected delivery %q attempt %d", m3.Event.ID(), m3.Attempt)
	case <-time.After(3 * idle):
	}
}

// TestWildcardNewTopicAfterSubscribe checks that a topic first published
// after a pattern subscription started is found and read from its start.
func TestWildcardNewTopicAfterSubscribe(t *testing.T) {
	tr, ns, ctx := setup(t, ekredis.WithDiscoverInterval(100*time.Millisecond))
	s := testkit.Subscribe(t, ctx, tr, ns+".orders.>", eventkit.WithGroup(ns+"-g"))
	// Published by another transport, so the subscriber's process learns
	// the topic only from the registry.
	other := mustNew(t, newClient(t), ekredis.WithPrefix("ektest:"+ns+":"))
	defer other.Close()
	if err := other.Publish(ctx, ns+".orders.eu.created", eventkittest.NewEvents("w", 5)...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		select {
		case m := <-s.Messages():
			if m.Topic != ns+".orders.eu.created" {
				t.Fatalf("topic %q", m.Topic)
			}
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("got %d of 5", i)
		}
	}
}
