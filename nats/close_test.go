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
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()

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
