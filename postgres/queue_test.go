package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// queueTestTables drops the tables of each namespace once, at the end of the
// test that created them.
var queueTestTables sync.Map

func queueTestFactory(opts ...QueueOption) eventkittest.Factory {
	return func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		pool := outboxTestPool(t)
		name := "ekq_" + strings.ToLower(ns)
		q, err := NewQueue(context.Background(), pool, append([]QueueOption{QueueTable(name),
			QueueLogger(slog.New(slog.DiscardHandler))}, opts...)...)
		if err != nil {
			t.Fatalf("NewQueue: %v", err)
		}
		if _, loaded := queueTestTables.LoadOrStore(name, true); !loaded {
			url := outboxTestURL(t)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p, err := pgxpool.New(ctx, url)
				if err != nil {
					return
				}
				defer p.Close()
				_, _ = p.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s, %s`, q.table, q.groups, q.work))
			})
		}
		return q, q
	}
}

func TestQueueConformance(t *testing.T) {
	eventkittest.TestTransport(t, queueTestFactory(QueueVisibilityTimeout(5*time.Second), QueuePollInterval(100*time.Millisecond)),
		eventkittest.Features{
			Wildcards:        true,
			ConsumerGroups:   true,
			GroupBalance:     true,
			OrderPerKey:      true,
			Redelivery:       true,
			AttemptCount:     true,
			NackDelay:        true,
			Persistent:       true,
			RedeliverUnacked: true,
			AckTimeout:       5 * time.Second,
		})
}

// TestQueueLateCommitNotSkipped: a row whose transaction got its id first
// but commits after a later row is still delivered to the group.
func TestQueueLateCommitNotSkipped(t *testing.T) {
	pool := outboxTestPool(t)
	pub, sub := queueTestFactory(QueuePollInterval(50*time.Millisecond))(t, eventkittest.UniqueName("late"))
	q := pub.(*Queue)
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
	if _, err := tx.Exec(ctx, `INSERT INTO `+q.table+` (topic, event) VALUES ('late.t', $1)`, body); err != nil {
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

// TestQueueDeadConsumer: messages claimed by a consumer that never settles
// them come back to another member after the visibility timeout.
func TestQueueDeadConsumer(t *testing.T) {
	f := queueTestFactory(QueueVisibilityTimeout(time.Second), QueuePollInterval(50*time.Millisecond))
	ns := eventkittest.UniqueName("dead")
	pub, sub := f(t, ns)
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tp := ns + ".t"
	s1, err := sub.Subscribe(ctx, tp, eventkit.WithGroup("g"), eventkit.WithBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, tp, eventkittest.NewEvent("a"), eventkittest.NewEvent("b")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-s1.Messages(): // taken, never settled: this member "dies"
		case <-ctx.Done():
			t.Fatal("no delivery")
		}
	}
	// A second process joins the group; the dead member's claims come back.
	_, sub2 := f(t, ns)
	defer sub2.Close()
	start := time.Now()
	s2, err := sub2.Subscribe(ctx, tp, eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for len(got) < 2 {
		select {
		case m := <-s2.Messages():
			if m.Attempt < 2 {
				t.Errorf("redelivery of %s has Attempt %d", m.Event.ID(), m.Attempt)
			}
			got[m.Event.ID()]++
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("got %v", got)
		}
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("redelivered after %s, before the visibility timeout", el)
	}
	if err := errors.Join(); err != nil {
		t.Fatal(err)
	}
}
