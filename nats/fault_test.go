package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRestartWhilePublishingAndConsuming restarts the embedded server (shut
// down, started again on the same directory) twice while 10,000 events are
// published and consumed by a group and by a subscription without group.
// Every event must be handled at least once by each, and the stream must
// hold each event once (Nats-Msg-Id drops the re-publishes).
func TestRestartWhilePublishingAndConsuming(t *testing.T) {
	const total, batch = 10000, 500
	e, nc := ownServer(t)
	ns := eventkittest.UniqueName("fault")
	tr, err := eknats.New(nc,
		eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}),
		eknats.WithAckWait(2*time.Second), eknats.WithPublishAckTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := ns + ".orders"

	type sink struct {
		name string
		mu   sync.Mutex
		seen map[string]int
		all  chan struct{}
	}
	var sinks []*sink
	var wg sync.WaitGroup
	consume := func(name string, opts ...eventkit.SubscribeOption) {
		s, err := tr.Subscribe(ctx, tp, opts...)
		if err != nil {
			t.Fatalf("Subscribe %s: %v", name, err)
		}
		k := &sink{name: name, seen: map[string]int{}, all: make(chan struct{})}
		sinks = append(sinks, k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			for m := range s.Messages() {
				k.mu.Lock()
				k.seen[m.Event.ID()]++
				if len(k.seen) == total && k.seen[m.Event.ID()] == 1 {
					close(k.all)
				}
				k.mu.Unlock()
				_ = m.Ack()
			}
		}()
	}
	consume("group", eventkit.WithGroup("workers"))
	consume("alone")

	published := make(chan int, total/batch)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(published)
		for i := 0; i < total; i += batch {
			evs := make([]event.Event, batch)
			for j := range evs {
				evs[j] = eventkittest.NewEvent(fmt.Sprintf("ev-%05d", i+j))
			}
			// Publish retries by itself across the restart; a call that
			// still fails (its context ended) is repeated with the same ids.
			for {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err := tr.Publish(pctx, tp, evs...)
				pcancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Errorf("publish gave up: %v", err)
					return
				}
			}
			published <- i + batch
		}
	}()

	restarts := 0
	for n := range published {
		if (n == 3000 || n == 7000) && restarts < 2 {
			t.Logf("%s: restarting after %d published", time.Now().Format("05.000"), n)
			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			if err := e.Restart(rctx); err != nil {
				rcancel()
				t.Fatalf("Restart: %v", err)
			}
			rcancel()
			restarts++
			t.Logf("%s: restarted", time.Now().Format("05.000"))
		}
	}
	t.Logf("%s: all published", time.Now().Format("05.000"))
	for _, k := range sinks {
		select {
		case <-k.all:
		case <-ctx.Done():
			k.mu.Lock()
			t.Errorf("%s handled %d of %d events", k.name, len(k.seen), total)
			k.mu.Unlock()
		}
	}
	js := tr.JetStream()
	st, err := js.Stream(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != total {
		t.Errorf("stream holds %d messages, want %d (each event once)", info.State.Msgs, total)
	}
	dups := 0
	for _, k := range sinks {
		k.mu.Lock()
		for _, c := range k.seen {
			if c > 1 {
				dups++
			}
		}
		k.mu.Unlock()
	}
	t.Logf("%d restarts; %d events handled more than once (at-least-once allows it)", restarts, dups)
	cancel()
	wg.Wait()
	_ = jetstream.FileStorage
}
