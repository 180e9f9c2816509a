package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
)

// A group member that closes while the server is redelivering nacked
// messages to it must not strand any of them: the next member gets every
// message at once, not after the ack wait (a minute here). Before the
// subscription drained its inbox on close, messages in flight to it were
// dropped by the client and came back only after the ack wait (about one
// round in six).
func TestCloseStrandsNothingInFlight(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithAckWait(time.Minute))
	ctx := context.Background()
	for round := 0; round < 6; round++ {
		subject := fmt.Sprintf("%s.r%d", ns, round)
		group := eventkit.WithGroup(fmt.Sprint("close-", round))
		first, err := tr.Subscribe(ctx, subject, group)
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := 0; i < n; i++ {
			if err := tr.Publish(ctx, subject, eventkittest.NewEvent(fmt.Sprint("e", i))); err != nil {
				t.Fatal(err)
			}
		}
		// Nack everything with a short delay for a while, so that
		// redeliveries are in flight when the member closes.
		var wg sync.WaitGroup
		stop := time.After(300 * time.Millisecond)
	nacking:
		for k := 0; ; k++ {
			select {
			case m := <-first.Messages():
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(k%7) * time.Millisecond)
					_ = m.NackAfter(nil, 50*time.Millisecond)
				}()
			case <-stop:
				break nacking
			}
		}
		// Every nack is made before the close: a message settled after
		// its subscription closed is refused (eventkit.ErrClosed) and left
		// to the ack wait, by package transport's contract. The nacked
		// messages come back 50ms later, in flight while the member
		// closes.
		wg.Wait()
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}

		next, err := tr.Subscribe(ctx, subject, group)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		timeout := time.After(15 * time.Second)
		for len(got) < n {
			select {
			case m := <-next.Messages():
				got[m.Event.ID()] = true
				_ = m.Ack()
			case <-timeout:
				t.Fatalf("round %d: the next member got %d of %d events within 15s (ack wait 1m)", round, len(got), n)
			}
		}
		_ = next.Close()
	}
}

// A message nacked for redelivery now must come back at once after a
// server restart, not after the ack wait: JetStream keeps a plain NAK only
// in memory, so the transport sends a delayed NAK, which is stored.
// Nothing may take the message again before the restart: the subscription
// keeps pull requests outstanding, and the server redelivers a nacked
// message to them within 10ms, which a Close right after the nack could not
// always beat (1 failure in 17 runs on a loaded machine, "attempt 3"). So
// the consumer is paused (JetStream delivers nothing, redeliveries
// included) from before the nack until after the restart; a settle after
// Close would be refused, by package transport's contract. Closing the
// subscription nacks the filler.
func TestNackSurvivesServerRestart(t *testing.T) {
	emb, nc := ownServer(t, natsserver.WithoutListener())
	ctx := context.Background()
	tr, err := eknats.New(nc, eknats.WithAckWait(time.Minute),
		eknats.WithStream(eknats.StreamConfig{Name: "RESTART", Subjects: []string{"restart.>"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	group := eventkit.WithGroup("restart")
	first, err := tr.Subscribe(ctx, "restart.x", group, eventkit.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "restart.x", eventkittest.NewEvent("again"), eventkittest.NewEvent("filler")); err != nil {
		t.Fatal(err)
	}
	m := take(t, first)
	if m.Event.ID() != "again" {
		t.Fatalf("got %q first, want \"again\"", m.Event.ID())
	}
	// Wait until the filler is delivered to the subscription too.
	waitAckPending(t, tr, "RESTART", "restart", 2)
	if _, err := tr.JetStream().PauseConsumer(ctx, "RESTART", "restart", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Both nacks (this one, and the filler's by Close) are confirmed by
	// the server when they return.
	if err := m.Nack(nil); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := emb.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// JetStream may still be recovering: retry until the deadline.
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		_, err := tr.JetStream().ResumeConsumer(rctx, "RESTART", "restart")
		if err == nil {
			break
		}
		select {
		case <-rctx.Done():
			t.Fatalf("resume the consumer after the restart: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	next, err := tr.Subscribe(ctx, "restart.x", group)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	timeout := time.After(15 * time.Second)
	for got := map[string]bool{}; !got["again"]; {
		select {
		case m := <-next.Messages():
			if m.Attempt != 2 {
				t.Fatalf("got %q attempt %d, want attempt 2", m.Event.ID(), m.Attempt)
			}
			got[m.Event.ID()] = true
			_ = m.Ack()
		case <-timeout:
			t.Fatal("the nacked message did not come back within 15s of the restart (ack wait 1m)")
		}
	}
}
