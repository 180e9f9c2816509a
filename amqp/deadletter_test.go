package amqp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestDeadLetter checks that a nack with a permanent error rejects the
// message into the dead-letter exchange, with its CloudEvents headers, and
// that the delivery limit dead-letters a message nacked again and again.
func TestDeadLetter(t *testing.T) {
	url := testkit.AMQPURL(t)
	ns := eventkittest.UniqueName("ekdl")
	ch := channel(t, url)
	dlx, dlq := ns+"-dlx", ns+"-dlq"
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup(t, url, dlx, []string{dlq}) })
	tr := dial(t, "ektest-"+ns, ekamqp.WithDeadLetterExchange(dlx), ekamqp.WithDeliveryLimit(2))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := ns + ".orders"
	sub := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithGroup(ns+"-g"))
	if err := tr.Publish(ctx, tp, eventkittest.NewEvent("poison"), eventkittest.NewEvent("flaky")); err != nil {
		t.Fatal(err)
	}
	for settled := 0; settled < 2; {
		select {
		case m := <-sub.Messages():
			if m.Event.ID() == "poison" {
				_ = m.Nack(eventkit.Permanent(errors.New("cannot be handled")))
				settled++
				continue
			}
			// A limit of 2 allows 2 failed deliveries; the third failure
			// dead-letters it.
			if m.Attempt > 3 {
				t.Fatalf("flaky delivered %d times with a delivery limit of 2", m.Attempt)
			}
			_ = m.Nack(errors.New("try again"))
			if m.Attempt == 3 {
				settled++
			}
		case <-ctx.Done():
			t.Fatal("messages not delivered")
		}
	}
	got := map[string]bool{}
	for len(got) < 2 && ctx.Err() == nil {
		d, ok, err := ch.Get(dlq, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if d.Headers["cloudEvents_type"] != "dev.eventkit.test" {
			t.Errorf("dead letter lost its CloudEvents headers: %v", d.Headers)
		}
		got[d.Headers["cloudEvents_id"].(string)] = true
	}
	if !got["poison"] || !got["flaky"] {
		t.Fatalf("dead-lettered %v, want poison and flaky", got)
	}
	select {
	case m := <-sub.Messages():
		t.Fatalf("unexpected delivery of %q (attempt %d)", m.Event.ID(), m.Attempt)
	case <-time.After(300 * time.Millisecond):
	}
}
