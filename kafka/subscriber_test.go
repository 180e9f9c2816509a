package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
)

// committed returns the group's committed offsets of topic by partition.
func committed(t *testing.T, ctx context.Context, tr *kafka.Transport, group, topic string) map[int32]int64 {
	t.Helper()
	offs, err := tr.Admin().FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// waitCommitted waits until partition 0 of topic is committed at want.
func waitCommitted(t *testing.T, ctx context.Context, tr *kafka.Transport, group, topic string, want int64) {
	t.Helper()
	for {
		if got := committed(t, ctx, tr, group, topic)[0]; got == want {
			return
		} else if got > want {
			t.Fatalf("committed offset %d passed %d", got, want)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("offset %d never committed (at %v)", want, committed(t, context.Background(), tr, group, topic))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func take(t *testing.T, s eventkit.Subscription, n int) []*eventkit.Message {
	t.Helper()
	return testkit.Take(t, s, n, 20*time.Second)
}

func events(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(prefix + strconv.Itoa(i))
	}
	return evs
}

func setup(t *testing.T, partitions int32) (*kafka.Transport, string, context.Context) {
	t.Helper()
	tr, name, ctx, _ := setupBrokers(t, partitions)
	return tr, name, ctx
}

func setupBrokers(t *testing.T, partitions int32) (*kafka.Transport, string, context.Context, []string) {
	t.Helper()
	brokers := newCluster(t)
	tr, name, ctx := setupOn(t, brokers, partitions)
	return tr, name, ctx, brokers
}

// setupOn creates a topic of a unique name on brokers.
func setupOn(t *testing.T, brokers []string, partitions int32) (*kafka.Transport, string, context.Context) {
	t.Helper()
	tr := newTransport(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	name := eventkittest.UniqueName("commit") + ".t"
	if err := tr.CreateTopic(ctx, name, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
	return tr, name, ctx
}

// The committed offset stops at the first record not yet acked, however
// many later records are acked, and moves on once it is.
func TestCommitNeverPassesUnfinished(t *testing.T) {
	tr, name, ctx := setup(t, 1)
	if err := tr.Publish(ctx, name, events("c-", 10)...); err != nil {
		t.Fatal(err)
	}
	s, err := tr.Subscribe(ctx, name, eventkit.WithGroup("g"), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms := take(t, s, 10)
	for i, m := range ms {
		if m.Event.ID() != "c-"+strconv.Itoa(i) {
			t.Fatalf("message %d is %s: partition order broken", i, m.Event.ID())
		}
		if i != 3 {
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitCommitted(t, ctx, tr, "g", name, 3)
	time.Sleep(300 * time.Millisecond) // several commit intervals
	if got := committed(t, ctx, tr, "g", name)[0]; got != 3 {
		t.Fatalf("committed %d past the unfinished offset 3", got)
	}
	if err := ms[3].Ack(); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, ctx, tr, "g", name, 10)
}

// A nacked record comes back after its delay with the next attempt number,
// and holds the commit back until it is acked.
func TestNackHoldsCommitAndRedelivers(t *testing.T) {
	tr, name, ctx := setup(t, 1)
	if err := tr.Publish(ctx, name, events("n-", 3)...); err != nil {
		t.Fatal(err)
	}
	s, err := tr.Subscribe(ctx, name, eventkit.WithGroup("g"), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms := take(t, s, 3)
	const delay = 300 * time.Millisecond
	nacked := time.Now()
	if err := ms[0].NackAfter(errors.New("later"), delay); err != nil {
		t.Fatal(err)
	}
	_ = ms[1].Ack()
	_ = ms[2].Ack()
	again := take(t, s, 1)[0]
	if el := time.Since(nacked); el < delay*9/10 {
		t.Errorf("redelivered after %s, before the nack delay %s", el, delay)
	}
	if again.Event.ID() != "n-0" || again.Attempt != 2 {
		t.Fatalf("redelivery is %s attempt %d, want n-0 attempt 2", again.Event.ID(), again.Attempt)
	}
	if got := committed(t, ctx, tr, "g", name)[0]; got > 0 {
		t.Fatalf("committed %d past the nacked offset 0", got)
	}
	_ = again.Ack()
	waitCommitted(t, ctx, tr, "g", name, 3)
}

// When a member joins, the partitions revoked from the old member are given
// up only after its messages in flight are settled and committed: the new
// member's Subscribe waits for that, and nothing is delivered twice.
func TestRevokeFinishesInFlightAndCommits(t *testing.T) {
	testRevokeFinishesInFlightAndCommits(t, newCluster(t))
}

func testRevokeFinishesInFlightAndCommits(t *testing.T, brokers []string) {
	tr, name, ctx := setupOn(t, brokers, 4)
	group := eventkittest.UniqueName("g")
	evs := events("r-", 40)
	for i := range evs {
		evs[i].SetExtension("partitionkey", "k"+strconv.Itoa(i))
	}
	if err := tr.Publish(ctx, name, evs...); err != nil {
		t.Fatal(err)
	}
	a, err := tr.Subscribe(ctx, name, eventkit.WithGroup(group), eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	held := take(t, a, 40) // all of them, none settled yet

	tr2 := newTransport(t, brokers)
	var (
		b      eventkit.Subscription
		berr   error
		joined = make(chan struct{})
	)
	go func() {
		defer close(joined)
		b, berr = tr2.Subscribe(ctx, name, eventkit.WithGroup(group))
	}()
	select {
	case <-joined:
		t.Fatalf("the new member joined while the old one had %d messages in flight (err %v)", len(held), berr)
	case <-time.After(500 * time.Millisecond):
	}
	var wg sync.WaitGroup
	for _, m := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Ack(); err != nil {
				t.Errorf("Ack during the revocation: %v", err)
			}
		}()
	}
	wg.Wait()
	<-joined
	if berr != nil {
		t.Fatalf("second member: %v", berr)
	}
	defer b.Close()
	got := committed(t, ctx, tr, group, name)
	var sum int64
	for _, o := range got {
		sum += o
	}
	if sum != 40 {
		t.Fatalf("committed offsets %v after the revocation sum to %d, want 40", got, sum)
	}
	select {
	case m := <-b.Messages():
		t.Fatalf("new member got %s again", m.Event.ID())
	case m := <-a.Messages():
		t.Fatalf("old member got %s again", m.Event.ID())
	case <-time.After(300 * time.Millisecond):
	}
}

// PublishAsync keeps at most WithMaxInFlight records unacknowledged and
// reports each call once.
func TestPublishAsync(t *testing.T) {
	brokers := newCluster(t)
	tr := newTransport(t, brokers, kafka.WithMaxInFlight(3))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := eventkittest.UniqueName("async") + ".t"
	s, err := tr.Subscribe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	calls := 0
	for i := 0; i < 10; i++ {
		err := tr.PublishAsync(ctx, name, events("a"+strconv.Itoa(i)+"-", 5), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("async publish: %v", err)
			}
			calls++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if calls != 10 {
		t.Errorf("done called %d times, want 10", calls)
	}
	mu.Unlock()
	for _, m := range take(t, s, 50) {
		_ = m.Ack()
	}
	bad := eventkittest.NewEvent("")
	var ve *eventkit.ValidationError
	if err := tr.PublishAsync(ctx, name, []event.Event{bad}, nil); !errors.As(err, &ve) {
		t.Errorf("invalid event: %v", err)
	}
}

// A subscription without a group uses an ephemeral group that is deleted
// when it closes.
func TestEphemeralGroupDeleted(t *testing.T) {
	tr, name, ctx := setup(t, 1)
	s, err := tr.Subscribe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	groups := func() []string {
		ls, err := tr.Admin().ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ls.Groups()
	}
	found := false
	for _, g := range groups() {
		found = found || strings.HasPrefix(g, kafka.EphemeralGroupPrefix)
	}
	if !found {
		t.Fatalf("no ephemeral group while subscribed: %v", groups())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups() {
		if strings.HasPrefix(g, kafka.EphemeralGroupPrefix) {
			t.Errorf("ephemeral group %s left behind", g)
		}
	}
}

// A pattern subscription sees a topic another process creates later (by
// metadata refresh) and reads it from its start: the events published
// before the subscription noticed the topic are delivered too.
func TestPatternFindsTopicCreatedElsewhere(t *testing.T) {
	brokers := newCluster(t)
	sub := newTransport(t, brokers)
	pub := newTransport(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := eventkittest.UniqueName("pat")
	s, err := sub.Subscribe(ctx, ns+".orders.>", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := pub.Publish(ctx, ns+".orders.eu.created", events("p-", 5)...); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, ns+".other", eventkittest.NewEvent("not-matched")); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range take(t, s, 5) {
		if m.Topic != ns+".orders.eu.created" {
			t.Errorf("message from topic %s", m.Topic)
		}
		got[m.Event.ID()] = true
		_ = m.Ack()
	}
	if len(got) != 5 {
		t.Errorf("got %v, want p-0..p-4", got)
	}
}

// A member that gets its partition back in a rebalance (the eager sticky
// balancer revokes every partition, then assigns them again) while a record
// is nacked and later ones wait undelivered in the subscription loses
// nothing: the nacked record is delivered again and the commit reaches the
// end only after it is acked.
func TestRegainedPartitionLosesNothing(t *testing.T) {
	testRegainedPartitionLosesNothing(t, newCluster(t))
}

func testRegainedPartitionLosesNothing(t *testing.T, brokers []string) {
	tr, name, ctx := setupOn(t, brokers, 1)
	group := eventkittest.UniqueName("g")
	const n = 40
	if err := tr.Publish(ctx, name, events("g-", n)...); err != nil {
		t.Fatal(err)
	}
	a, err := tr.Subscribe(ctx, name, eventkit.WithGroup(group), eventkit.FromStart(), eventkit.WithBuffer(2))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	first := take(t, a, 2)

	// A second member of the group, on another topic, makes the group
	// rebalance; the partition of name can only go back to a.
	other := name + "x"
	if err := tr.CreateTopic(ctx, other, 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	tr2 := newTransport(t, brokers)
	joined := make(chan error, 1)
	var b eventkit.Subscription
	go func() {
		var err error
		b, err = tr2.Subscribe(ctx, other, eventkit.WithGroup(group))
		joined <- err
	}()

	// The revocation waits for the messages handed out: the two taken and
	// the batch of two handed to package transport ahead of them.
	select {
	case err := <-joined:
		t.Fatalf("the rebalance finished with messages in flight (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	_ = first[0].Nack(errors.New("again")) // during the revocation: left unfinished
	_ = first[1].Ack()
	acked := map[string]bool{first[1].Event.ID(): true}
	for _, m := range take(t, a, 2) {
		acked[m.Event.ID()] = true
		_ = m.Ack()
	}
	if err := <-joined; err != nil {
		t.Fatalf("second member: %v", err)
	}
	defer b.Close()
	if got := committed(t, ctx, tr, group, name)[0]; got != 0 {
		t.Fatalf("committed %d past the nacked offset 0", got)
	}
	timeout := time.After(30 * time.Second)
	for len(acked) < n {
		select {
		case m, ok := <-a.Messages():
			if !ok {
				t.Fatalf("subscription ended: %v", a.Err())
			}
			acked[m.Event.ID()] = true
			_ = m.Ack()
		case <-timeout:
			var missing []string
			for i := 0; i < n; i++ {
				if id := "g-" + strconv.Itoa(i); !acked[id] {
					missing = append(missing, id)
				}
			}
			t.Fatalf("never delivered again: %v", missing)
		}
	}
	waitCommitted(t, ctx, tr, group, name, n)
}

// With eventkit.WithBuffer, a revocation waits for the messages taken and
// for those handed out ahead of the application (one batch), and no more:
// once they are settled the rebalance goes on at once, well before the
// revoke timeout, and the records not handed out are left to the group.
func TestRevocationWaitsForOneBatchAhead(t *testing.T) {
	brokers := newCluster(t)
	tr, name, ctx := setupOn(t, brokers, 1)
	group := eventkittest.UniqueName("g")
	if err := tr.Publish(ctx, name, events("w-", 40)...); err != nil {
		t.Fatal(err)
	}
	const revokeTimeout = 20 * time.Second
	sub := newTransport(t, brokers, kafka.WithRevokeTimeout(revokeTimeout))
	a, err := sub.Subscribe(ctx, name, eventkit.WithGroup(group), eventkit.FromStart(), eventkit.WithBuffer(2))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	held := take(t, a, 2)

	tr2 := newTransport(t, brokers)
	joined := make(chan error, 1)
	go func() {
		_, err := tr2.Subscribe(ctx, name, eventkit.WithGroup(group)) // closed with tr2
		joined <- err
	}()
	select {
	case err := <-joined:
		t.Fatalf("the rebalance finished with two messages taken and not settled (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	for _, m := range append(held, take(t, a, 2)...) {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("second member: %v", err)
		}
	case <-time.After(revokeTimeout / 2):
		t.Fatalf("the rebalance still waits %v after the messages handed out were settled", revokeTimeout/2)
	}
	t.Logf("the rebalance went on %v after the settlement", time.Since(start))
}

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
