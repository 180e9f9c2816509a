package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// preStream creates a stream with settings eventkit does not manage
// (MaxMsgSize, NoAck) before the transport declares it; the transport
// checks only the settings it manages, so it accepts the stream.
func preStream(t *testing.T, nc *nats.Conn, cfg jetstream.StreamConfig) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteStream(t, nc, cfg.Name) })
	return js
}

func events(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprintf("%s%04d", prefix, i))
	}
	return evs
}

// An error the stream gives in its ack is returned at once (not retried),
// naming the event and the topic, and keeps the server's error for
// errors.As; the events before it are stored.
func TestPublishAckErrorSurfaced(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	ns := eventkittest.UniqueName("ekerr")
	preStream(t, nc, jetstream.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, MaxMsgSize: 2048})
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	evs := events("ok", 3)
	big := eventkittest.NewEvent("too-big")
	if err := big.SetData("text/plain", strings.Repeat("x", 4096)); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, big)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = tr.Publish(ctx, ns+".x", evs...)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamMessageExceedsMaximum {
		t.Fatalf("Publish: got %v, want the stream's message-too-large error", err)
	}
	if !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) || !strings.Contains(err.Error(), `"too-big"`) || !strings.Contains(err.Error(), ns+".x") {
		t.Errorf("error %q does not name the event and topic", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("error returned after %v: retried?", d)
	}
	if n := streamMsgs(t, tr, ns); n != 3 {
		t.Errorf("stream holds %d messages, want the 3 events before the failing one", n)
	}
	// The transport still publishes.
	if err := tr.Publish(ctx, ns+".x", events("after", 2)...); err != nil {
		t.Fatal(err)
	}
}

// A publish acked as a duplicate (its Nats-Msg-Id stored within the
// window) counts as published.
func TestPublishDuplicateIsSuccess(t *testing.T) {
	tr, ns := newTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evs := events("d", 10)
	// Store the even events by hand, with the id eventkit sends.
	js := tr.JetStream()
	for i := 0; i < len(evs); i += 2 {
		m, err := eknats.EncodeMsg(ns+".x", evs[i], eventkit.Binary)
		if err != nil {
			t.Fatal(err)
		}
		m.Header.Set(nats.MsgIdHdr, eknats.DefaultMsgID(ns+".x", evs[i].ID(), evs[i].Source()))
		ack, err := js.PublishMsg(ctx, m)
		if err != nil || ack.Duplicate {
			t.Fatalf("raw publish: %v %+v", err, ack)
		}
	}
	if err := tr.Publish(ctx, ns+".x", evs...); err != nil {
		t.Fatalf("Publish with 5 duplicates: %v", err)
	}
	if err := tr.Publish(ctx, ns+".x", evs...); err != nil {
		t.Fatalf("Publish of 10 duplicates: %v", err)
	}
	if n := streamMsgs(t, tr, ns); n != 10 {
		t.Fatalf("stream holds %d messages, want 10", n)
	}
}

// A publish whose ack does not come within the publish ack timeout is
// sent again (same Nats-Msg-Id) until it is acked. The stream is made with
// NoAck, so the server stores the events but acks none, until NoAck is
// turned off: the resends after that are acked as duplicates, and the
// stream keeps one copy of each event.
func TestPublishAckTimeoutResends(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	ns := eventkittest.UniqueName("ekto")
	cfg := jetstream.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, NoAck: true}
	js := preStream(t, nc, cfg)
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}),
		eknats.WithPublishAckTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- tr.Publish(ctx, ns+".x", events("t", 20)...) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v without any ack", err)
	case <-time.After(time.Second):
	}
	cfg.NoAck = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		t.Logf("published after %v", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("Publish did not return within 15s of acks coming back")
	}
	if n := streamMsgs(t, tr, ns); n != 20 {
		t.Fatalf("stream holds %d messages, want 20 (one per event)", n)
	}
	// A call whose ctx ends while nothing is acked reports ctx's error.
	cfg.NoAck = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	short, scancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer scancel()
	if err := tr.Publish(short, ns+".x", events("u", 3)...); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish without acks: got %v, want DeadlineExceeded", err)
	}
}

// Close while a call waits for acks that do not come: the call fails with
// ErrClosed (after its ack timeout, instead of resending), later calls
// fail with ErrClosed at once, and the inbox goes away.
func TestCloseWhileAwaitingAcks(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	ns := eventkittest.UniqueName("ekcl")
	preStream(t, nc, jetstream.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, NoAck: true})
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}),
		eknats.WithPublishAckTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	subs := nc.NumSubscriptions() // nats.go's request inbox, made by EnsureStreams
	done := make(chan error, 1)
	go func() { done <- tr.Publish(ctx, ns+".x", events("c", 10)...) }()
	// The call makes its ack inbox when it starts, whenever it is scheduled.
	for deadline := time.Now().Add(10 * time.Second); nc.NumSubscriptions() != subs+1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions 10s after publishing began, want %d (the ack inbox)", nc.NumSubscriptions(), subs+1)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v without any ack", err)
	default:
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, eventkit.ErrClosed) {
			t.Fatalf("Publish during Close: got %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish did not return within 10s of Close")
	}
	if err := tr.Publish(ctx, ns+".x", events("late", 1)...); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish after Close: got %v, want ErrClosed", err)
	}
	if n := nc.NumSubscriptions(); n != subs {
		t.Fatalf("%d subscriptions on the connection after Close, want %d (the ack inbox gone)", n, subs)
	}
}

// Close while several goroutines publish, with a small in-flight bound so
// that calls wait for room: every call returns, either nil (every event
// acked) or ErrClosed, and an event of a call that returned nil is stored.
func TestCloseWhilePublishing(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithMaxInFlight(16))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []string
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				evs := events(fmt.Sprintf("g%d-%d-", g, k), 200)
				err := tr.Publish(ctx, ns+".x", evs...)
				if errors.Is(err, eventkit.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					acked = append(acked, e.ID())
				}
				mu.Unlock()
			}
		}()
	}
	// Close once some calls succeeded (however slowly the machine runs),
	// while the others are still publishing.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing published within 15s")
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(15 * time.Second):
		t.Fatal("publishers did not return within 15s of Close")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("nothing published before Close")
	}
	if n := streamMsgs(t, tr, ns); n < uint64(len(acked)) {
		t.Fatalf("stream holds %d messages, fewer than the %d reported published", n, len(acked))
	}
	t.Logf("%d events published before Close", len(acked))
}

// One call publishes events whose attributes differ (binary mode encodes
// each into the same reused message): each stored message carries exactly
// its own event's headers and data, nothing left from the event before.
func TestPublishBatchHeadersPerEvent(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	evs := make([]event.Event, 4)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprintf("mixed-%d", i))
	}
	evs[0].SetExtension("partitionkey", "k0")
	evs[0].SetSubject("first")
	evs[1].SetTime(time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC))
	if err := evs[2].SetData("text/plain", "plain"); err != nil {
		t.Fatal(err)
	}
	evs[3].SetSource("urn:other")
	evs[3].SetExtension("tenant", "t3")
	if err := tr.Publish(ctx, ns+".x", evs...); err != nil {
		t.Fatal(err)
	}
	st, err := tr.JetStream().Stream(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		raw, err := st.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		want, err := eknats.EncodeMsg(ns+".x", e, eventkit.Binary)
		if err != nil {
			t.Fatal(err)
		}
		want.Header.Set(nats.MsgIdHdr, eknats.DefaultMsgID(ns+".x", e.ID(), e.Source()))
		if len(raw.Header) != len(want.Header) {
			t.Errorf("event %d: headers %v, want %v", i, raw.Header, want.Header)
		}
		for k, vs := range want.Header {
			if got := raw.Header.Values(k); len(got) != 1 || got[0] != vs[0] {
				t.Errorf("event %d: header %s = %q, want %q", i, k, got, vs)
			}
		}
		if string(raw.Data) != string(e.Data()) {
			t.Errorf("event %d: data %q, want %q", i, raw.Data, e.Data())
		}
	}
}
