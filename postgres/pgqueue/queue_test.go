package pgqueue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func testURL(t testing.TB) string { return pgtest.URL(t) }

func testPool(t testing.TB) *pgxpool.Pool { return pgtest.Pool(t) }

// queueTestTables drops the tables of each namespace once, at the end of the
// test that created them.
var queueTestTables sync.Map

func queueTestFactory(opts ...Option) eventkittest.Factory { return queueFactoryOn(testPool, opts...) }

// queueFactoryOn makes queues on pools from newPool.
func queueFactoryOn(newPool func(testing.TB) *pgxpool.Pool, opts ...Option) eventkittest.Factory {
	return func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		pool := newPool(t)
		name := "ekq_" + strings.ToLower(ns)
		q, err := New(pool, append([]Option{WithTable(name),
			WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if _, loaded := queueTestTables.LoadOrStore(name, true); !loaded {
			url := pool.Config().ConnString()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p, err := pgxpool.New(ctx, url)
				if err != nil {
					return
				}
				defer p.Close()
				_, _ = p.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s, %s, %s`, q.d.table, q.d.groups, q.d.work, q.d.claims))
			})
		}
		return q, q
	}
}

// conformanceOptions are the queue options of the conformance suite.
var conformanceOptions = []Option{WithVisibilityTimeout(5 * time.Second), WithPollInterval(100 * time.Millisecond)}

func TestQueueConformance(t *testing.T) {
	features := testkit.DurableFeatures()
	features.AckTimeout = 5 * time.Second
	features.Restart = restartable
	features.SeekMovesMembers = true
	eventkittest.TestTransport(t, queueTestFactory(conformanceOptions...), features)
}

// restartable is the restart feature: queues on a PostgreSQL of the test's
// own, which restart restarts (fast shutdown).
func restartable(t *testing.T) (eventkittest.Factory, func()) {
	pg := pgtest.StartPrivate(t)
	return queueFactoryOn(pg.Pool, conformanceOptions...), pg.Restart
}

// TestQueueLateCommitNotSkipped: a row whose transaction got its id first
// but commits after a later row is still delivered to the group.
func TestQueueLateCommitNotSkipped(t *testing.T) {
	pool := testPool(t)
	pub, sub := queueTestFactory(WithPollInterval(50*time.Millisecond))(t, eventkittest.UniqueName("late"))
	q := pub.(*Transport)
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := sub.Subscribe(ctx, "late.>", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A transaction inserts first (lower id) and stays open.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	body, _ := eventkit.MarshalEvent(eventkittest.NewEvent("early-id-late-commit"))
	if _, err := tx.Exec(ctx, `INSERT INTO `+q.d.table+` (topic, event) VALUES ('late.t', $1)`, body); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "late.t", eventkittest.NewEvent("late-id-early-commit")); err != nil {
		t.Fatal(err)
	}
	// While the first transaction is open, nothing after it is taken.
	select {
	case m := <-s.Messages():
		t.Fatalf("delivered %s while an older transaction was open", m.Event.ID())
	case <-time.After(500 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case m := <-s.Messages():
			got[m.Event.ID()] = true
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("got %v; the late-committing row was skipped", got)
		}
	}
}

// TestQueueHeldPastVisibilityTimeout: a message a live member holds past
// the visibility timeout goes to another member.
func TestQueueHeldPastVisibilityTimeout(t *testing.T) {
	f := queueTestFactory(WithVisibilityTimeout(time.Second), WithPollInterval(50*time.Millisecond))
	ns := eventkittest.UniqueName("held")
	pub, sub := f(t, ns)
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tp := ns + ".t"
	s1, err := sub.Subscribe(ctx, tp, eventkit.WithGroup("g"), eventkit.WithBuffer(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, tp, eventkittest.NewEvent("a"), eventkittest.NewEvent("b")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 2 {
		select {
		case <-s1.Messages(): // taken, never settled
		case <-ctx.Done():
			t.Fatal("no delivery")
		}
	}
	_, sub2 := f(t, ns)
	defer sub2.Close()
	s2, err := sub2.Subscribe(ctx, tp, eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	// The first member may take them again itself; they are settled there.
	awaitRedelivered(ctx, t, 2, s2.Messages(), s1.Messages())
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("redelivered after %s, before the visibility timeout", el)
	}
}

const queueDeadEnv = "EVENTKIT_QUEUE_DEAD_CHILD"

// TestQueueDeadConsumerChild is the member that dies in
// TestQueueDeadConsumer.
func TestQueueDeadConsumerChild(t *testing.T) {
	if os.Getenv(queueDeadEnv) != "1" {
		t.Skip("helper process of TestQueueDeadConsumer")
	}
	pool := testPool(t)
	q, err := New(pool, WithTable(os.Getenv("EVENTKIT_QUEUE_TABLE")), WithVisibilityTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s, err := q.Subscribe(context.Background(), os.Getenv("EVENTKIT_QUEUE_TOPIC"), eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-s.Messages() // taken, never settled
	}
	fmt.Println("TAKEN")
	select {} // the parent kills us
}

// TestQueueDeadConsumer: the messages a consumer claimed are delivered to
// another member after the consumer is killed (SIGKILL) and its claim's
// visibility timeout passes.
func TestQueueDeadConsumer(t *testing.T) {
	f := queueTestFactory(WithVisibilityTimeout(time.Second), WithPollInterval(50*time.Millisecond))
	ns := eventkittest.UniqueName("dead")
	pub, sub := f(t, ns)
	defer pub.Close()
	q := pub.(*Transport)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tp := ns + ".t"
	s0, err := sub.Subscribe(ctx, tp, eventkit.WithGroup("g")) // creates the group
	if err != nil {
		t.Fatal(err)
	}
	_ = s0.Close()
	if err := pub.Publish(ctx, tp, eventkittest.NewEvent("a"), eventkittest.NewEvent("b")); err != nil {
		t.Fatal(err)
	}
	child := eventkittest.StartChild(t, "^TestQueueDeadConsumerChild$", queueDeadEnv+"=1", "EVENTKIT_QUEUE_TABLE="+q.d.o.table,
		"EVENTKIT_QUEUE_TOPIC="+tp, "EVENTKIT_POSTGRES_URL="+testURL(t))
	child.WaitLine(t, "TAKEN", 90*time.Second) // no shorter than ctx's bound
	_ = child.Kill()
	var claims int
	if err := q.d.pool.QueryRow(ctx, `SELECT count(*) FROM `+q.d.claims).Scan(&claims); err != nil || claims != 1 {
		t.Fatalf("claims of the dead member: %d, %v; want 1", claims, err)
	}
	s, err := sub.Subscribe(ctx, tp, eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	awaitRedelivered(ctx, t, 2, s.Messages(), nil)
}

// awaitRedelivered acks the messages of member until n distinct events
// came, and fails t if one comes with an Attempt below 2 (not a
// redelivery) or if ctx ends first. The messages of taker (nil: none), a
// member that held them before and may take them again itself, are acked
// and counted whatever their Attempt.
func awaitRedelivered(ctx context.Context, t *testing.T, n int, member, taker <-chan *eventkit.Message) {
	t.Helper()
	got := map[string]int{}
	for len(got) < n {
		select {
		case m := <-member:
			if m.Attempt < 2 {
				t.Errorf("redelivery of %s has Attempt %d", m.Event.ID(), m.Attempt)
			}
			got[m.Event.ID()]++
			_ = m.Ack()
		case m := <-taker:
			got[m.Event.ID()]++
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("got %v of %d redeliveries", got, n)
		}
	}
}

// TestQueueRetention: housekeeping deletes messages older than the
// retention, and the groups of subscriptions that died without closing.
func TestQueueRetention(t *testing.T) {
	ns := eventkittest.UniqueName("ret")
	pub, _ := queueTestFactory(WithRetention(time.Hour))(t, ns)
	q := pub.(*Transport)
	defer q.Close()
	ctx := context.Background()
	if err := q.Publish(ctx, ns+".t", eventkittest.NewEvent("old-1"), eventkittest.NewEvent("old-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.d.pool.Exec(ctx, `UPDATE `+q.d.table+` SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if _, err := q.d.pool.Exec(ctx, `INSERT INTO `+q.d.groups+` (name, pattern, regex, cur_xid, cur_id, ephemeral, seen_at)
		VALUES ('~dead', 'x', '^x$', '0', 0, true, now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if err := q.Publish(ctx, ns+".t", eventkittest.NewEvent("new")); err != nil {
		t.Fatal(err)
	}
	q.d.housekeep(ctx)
	var msgs, groups int
	if err := q.d.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+q.d.table+`), (SELECT count(*) FROM `+q.d.groups+`)`).Scan(&msgs, &groups); err != nil {
		t.Fatal(err)
	}
	if msgs != 1 || groups != 0 {
		t.Fatalf("after housekeeping: %d messages (want 1), %d groups (want 0)", msgs, groups)
	}
}
