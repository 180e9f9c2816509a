package memory_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
)

// An unknown policy, or a transport option memory does not know, fails
// Subscribe instead of being ignored.
func TestSubscribeRefusesInvalidOptions(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	for name, opt := range map[string]eventkit.SubscribeOption{
		"policy":  memory.WithPolicy(memory.Policy(7)),
		"unknown": eventkit.WithTransportOption(struct{ x int }{1}),
	} {
		if _, err := bus.Subscribe(ctx, "opts", opt); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: Subscribe returned %v, want ErrInvalidOption", name, err)
		}
	}
}

// eventkit.WithBuffer sizes the buffer even when it is
// driver.DefaultMaxBatch: a Fail subscription of 100 that nobody reads
// fails long before the default buffer of 1024 would.
func TestWithBufferSizesTheQueue(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	if _, err := bus.Subscribe(ctx, "sized", eventkit.WithBuffer(100), memory.WithPolicy(memory.Fail)); err != nil {
		t.Fatal(err)
	}
	// The buffer, plus what package transport holds: two batches of 100
	// and the message it is handing over.
	const bound = 100 + 2*100 + 1
	for i := 0; i < memory.DefaultBuffer; i++ {
		err := bus.Publish(ctx, "sized", eventkittest.NewEvent("e-"+strconv.Itoa(i)))
		if errors.Is(err, eventkit.ErrBufferFull) {
			if i < 100 || i > bound {
				t.Fatalf("buffer full after %d events, want between 100 and %d", i, bound)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%d events published to a buffer of 100 that nobody reads", memory.DefaultBuffer)
}

// Close wakes a publisher blocked on a full buffer, which returns
// ErrClosed, and does not wait for it until its close timeout.
func TestCloseWakesBlockedPublisher(t *testing.T) {
	bus := memory.New()
	ctx := context.Background()
	if _, err := bus.Subscribe(ctx, "full", eventkit.WithBuffer(1)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := bus.Publish(ctx, "full", eventkittest.NewEvent("f-"+strconv.Itoa(i))); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Wait until the publisher is blocked: the buffer and package
	// transport's batches are full, and Published stops growing.
	deadline := time.Now().Add(5 * time.Second)
	last, still := uint64(0), 0
	for still < 20 {
		if time.Now().After(deadline) {
			t.Fatal("the publisher never blocked")
		}
		time.Sleep(5 * time.Millisecond)
		if n := bus.Stats().Published; n == last && n > 0 {
			still++
		} else {
			last, still = n, 0
		}
	}
	start := time.Now()
	if err := bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Close took %s", el)
	}
	if err := testkit.Receive(t, errc, 5*time.Second, "the blocked Publish, woken by Close"); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("blocked Publish returned %v, want ErrClosed", err)
	}
}

// The bus declares what its conformance run claims.
func TestCapabilities(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	want := eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapOrderPerKey | eventkit.CapBatchPublish
	if got := eventkit.CapabilitiesOf(bus); got != want {
		t.Fatalf("capabilities %s, want %s", got, want)
	}
}

// A group member that closes gives the messages it received but did not
// hand over back to its group: another member gets every event.
func TestMemberCloseGivesBackUntaken(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	m1 := testkit.Subscribe(t, ctx, bus, "g", eventkit.WithGroup("g"))
	const n = 6
	for i := 0; i < n; i++ {
		if err := bus.Publish(ctx, "g", eventkittest.NewEvent("g-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	first := <-m1.Messages()
	_ = first.Ack()
	m2 := testkit.Subscribe(t, ctx, bus, "g", eventkit.WithGroup("g"))
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{first.Event.ID(): true}
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case m := <-m2.Messages():
			got[m.Event.ID()] = true
			_ = m.Ack()
		case <-timeout:
			t.Fatalf("the group got %d of %d events after its first member closed", len(got), n)
		}
	}
}
