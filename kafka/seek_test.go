package kafka_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
)

func TestSeekMultiplePartitions(t *testing.T) { testSeekPartitions(t, newCluster(t)) }

func TestKafkaRealBrokerSeekMultiplePartitions(t *testing.T) { testSeekPartitions(t, realBrokers(t)) }

// testSeekPartitions publishes two batches over 4 partitions, then checks
// that StartAt between them, and a StartAtPosition that lists, for each
// partition, the first record of the second batch (or the end), start a
// new group at exactly the second batch; that Seek moves an existing group
// there too; and that Kafka refuses to Seek a group that has a member.
func testSeekPartitions(t *testing.T, brokers []string) {
	tr, name, ctx := setupOn(t, brokers, 4)
	first, second := keyed("a-", 12), keyed("b-", 12)
	if err := tr.Publish(ctx, name, first...); err != nil {
		t.Fatal(err)
	}
	mid := time.Now().Truncate(time.Millisecond).Add(10 * time.Millisecond)
	for time.Now().Before(mid.Add(10 * time.Millisecond)) {
		time.Sleep(2 * time.Millisecond)
	}
	if err := tr.Publish(ctx, name, second...); err != nil {
		t.Fatal(err)
	}
	group := eventkittest.UniqueName("seek")
	s, err := tr.Subscribe(ctx, name, eventkit.WithGroup(group), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	// Per partition: the position of its first record of the second
	// batch, else the offset after its last record.
	start := map[int32]string{}
	last := map[int32]int64{}
	for _, m := range take(t, s, 24) {
		_ = m.Ack()
		p, o := splitPosition(t, m.Position)
		if strings.HasPrefix(m.Event.ID(), "b-") {
			if _, ok := start[p]; !ok {
				start[p] = m.Position
			}
		} else {
			last[p] = max(last[p], o+1)
		}
	}
	if err := tr.Seek(ctx, name, group, eventkit.StartAt(mid)); !errors.Is(err, kafka.ErrGroupHasMembers) {
		t.Errorf("Seek of a group with a member: %v, want ErrGroupHasMembers", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var items []string
	for p, o := range last {
		if _, ok := start[p]; !ok {
			items = append(items, strconv.Itoa(int(p))+":"+strconv.FormatInt(o, 10))
		}
	}
	for _, pos := range start {
		items = append(items, name+"/"+pos) // the topic's own form
	}
	pos := strings.Join(items, ",")

	expect := func(what string, opts ...eventkit.SubscribeOption) {
		t.Helper()
		s, err := tr.Subscribe(ctx, name, opts...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer s.Close()
		got := map[string]bool{}
		for _, m := range take(t, s, len(second)) {
			_ = m.Ack()
			got[m.Event.ID()] = true
		}
		for _, ev := range second {
			if !got[ev.ID()] {
				t.Fatalf("%s: event %s of the second batch missing, got %v", what, ev.ID(), got)
			}
		}
		select {
		case m := <-s.Messages():
			t.Fatalf("%s: unexpected event %s", what, m.Event.ID())
		case <-time.After(300 * time.Millisecond):
		}
	}
	expect("StartAt", eventkit.WithGroup(eventkittest.UniqueName("t")), eventkit.StartAt(mid))
	expect("StartAtPosition "+pos, eventkit.WithGroup(eventkittest.UniqueName("p")), eventkit.StartAtPosition(pos))
	if err := tr.Seek(ctx, name, group, eventkit.StartAtPosition(pos)); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	expect("the group moved to "+pos, eventkit.WithGroup(group))
	if err := tr.Seek(ctx, name, group, eventkit.StartAt(mid)); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	expect("the group moved to the time", eventkit.WithGroup(group))
}

// keyed returns n events, each with a key of its own.
func keyed(prefix string, n int) []event.Event {
	evs := events(prefix, n)
	for i := range evs {
		evs[i].SetExtension("partitionkey", prefix+strconv.Itoa(i))
	}
	return evs
}

func splitPosition(t *testing.T, pos string) (int32, int64) {
	t.Helper()
	ps, os, ok := strings.Cut(pos, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	if !ok || perr != nil || oerr != nil {
		t.Fatalf("position %q is not <partition>:<offset>", pos)
	}
	return int32(p), o
}
