package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newTransport returns a transport on the shared embedded server with a
// stream for "<ns>.>" (deleted at the end) and the namespace.
func newTransport(t *testing.T, opts ...eknats.Option) (*eknats.Transport, string) {
	t.Helper()
	nc, ns := embeddedStream(t, "ekt")
	all := append([]eknats.Option{eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}})}, opts...)
	tr, err := eknats.New(nc, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	if err := tr.EnsureStreams(context.Background()); err != nil { // New does no I/O
		t.Fatal(err)
	}
	return tr, ns
}

// take returns the next message of s, failing the test after 30 s.
func take(t *testing.T, s eventkit.Subscription) *eventkit.Message {
	t.Helper()
	return eventkittest.Receive(t, s, 30*time.Second)
}

func quiet(t *testing.T, s eventkit.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if ok {
			t.Fatalf("unexpected delivery of %q (attempt %d)", m.Event.ID(), m.Attempt)
		}
	case <-time.After(d):
	}
}

func streamMsgs(t *testing.T, tr *eknats.Transport, name string) uint64 {
	t.Helper()
	s, err := tr.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestStructuredRoundTrip(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithMode(eventkit.Structured))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x")
	if err != nil {
		t.Fatal(err)
	}
	want := eventkittest.NewEvent("s-1")
	want.SetSubject("ü & spaces")
	want.SetExtension("extint", 7)
	if err := tr.Publish(ctx, ns+".x", want); err != nil {
		t.Fatal(err)
	}
	m := take(t, s)
	if d := eventkittest.DiffEvents(want, m.Event); d != "" {
		t.Fatalf("changed in transit: %s", d)
	}
	raw := m.Raw().(*nats.Msg)
	if ct := raw.Header.Get("content-type"); ct != eventkit.MediaTypeCloudEvents {
		t.Fatalf("content-type %q, want structured mode", ct)
	}
	_ = m.Ack()
}

func TestRepublishIsDropped(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	e := eventkittest.NewEvent("once")
	for i := 0; i < 3; i++ {
		if err := tr.Publish(ctx, ns+".x", e); err != nil {
			t.Fatal(err)
		}
	}
	// The same id from another source, or to another topic, is another event.
	other := eventkittest.NewEvent("once")
	other.SetSource("urn:other")
	if err := tr.Publish(ctx, ns+".x", other); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, ns+".y", e); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, tr, ns); n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}
}

func TestStreamNotChangedSilently(t *testing.T) {
	nc, ns := embeddedStream(t, "ekm")
	cfg := eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, MaxAge: time.Hour}
	// New does no I/O: EnsureStreams creates or checks the streams.
	ensured := func(opts ...eknats.Option) (*eknats.Transport, error) {
		tr, err := eknats.New(nc, opts...)
		if err != nil {
			return nil, err
		}
		return tr, tr.EnsureStreams(context.Background())
	}
	if _, err := ensured(eknats.WithStream(cfg)); err != nil {
		t.Fatal(err)
	}
	if _, err := ensured(eknats.WithStream(cfg)); err != nil {
		t.Fatalf("same declaration again: %v", err)
	}
	cfg.MaxAge = 2 * time.Hour
	_, err := ensured(eknats.WithStream(cfg))
	var mm *eknats.StreamMismatchError
	if !errors.As(err, &mm) || mm.Stream != ns || len(mm.Differences) != 1 {
		t.Fatalf("changed declaration: got %v, want a StreamMismatchError on max_age", err)
	}
	tr, err := ensured(eknats.WithStream(cfg), eknats.WithStreamUpdate())
	if err != nil {
		t.Fatalf("with WithStreamUpdate: %v", err)
	}
	s, err := tr.JetStream().Stream(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 2*time.Hour {
		t.Fatalf("max age after update %s, want 2h", got)
	}
}

func TestTopicsOutsideStreams(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	err := tr.Publish(ctx, "elsewhere.x", eventkittest.NewEvent("x"))
	if !errors.Is(err, eknats.ErrNoStream) {
		t.Fatalf("publish outside the declared stream: got %v, want ErrNoStream", err)
	}
	if _, err := tr.Subscribe(ctx, ns+"x.>"); !errors.Is(err, eknats.ErrNoStream) {
		t.Fatalf("subscribe outside the declared stream: got %v, want ErrNoStream", err)
	}
	if _, err := tr.Subscribe(ctx, ">"); !errors.Is(err, eknats.ErrNoStream) {
		t.Fatalf("subscribe to a pattern wider than the stream: got %v, want ErrNoStream", err)
	}
}

func TestAutoStreams(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	tok := eventkittest.UniqueName("auto")
	tr, err := eknats.New(nc) // no stream declared: automatic streams
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteStream(t, nc, "EVENTKIT_"+tok) })
	defer tr.Close()
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, tok+".*.created")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, tok+".eu.created", eventkittest.NewEvent("a")); err != nil {
		t.Fatal(err)
	}
	if m := take(t, s); m.Event.ID() != "a" {
		t.Fatalf("got %q", m.Event.ID())
	}
	st, err := tr.JetStream().Stream(ctx, "EVENTKIT_"+tok)
	if err != nil {
		t.Fatalf("automatic stream: %v", err)
	}
	if c := st.CachedInfo().Config; c.Storage != jetstream.FileStorage || c.MaxAge != eknats.DefaultStreamConfig.MaxAge {
		t.Fatalf("automatic stream config %+v", c)
	}
	if _, err := tr.Subscribe(ctx, "*.x"); !errors.Is(err, eknats.ErrNoStream) {
		t.Fatalf("pattern starting with a wildcard: got %v, want ErrNoStream", err)
	}
}

// TestInProgressKeepsLongHandlers holds a message for three ack waits: the
// in-progress acks must keep it from being redelivered.
func TestInProgressKeepsLongHandlers(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithAckWait(time.Second), eknats.WithAckExtension(time.Minute))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("slow"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent("slow")); err != nil {
		t.Fatal(err)
	}
	m := take(t, s)
	quiet(t, s, 3*time.Second)
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	quiet(t, s, 1500*time.Millisecond)
}

// TestInProgressKeepsWaitingMessages: messages that reached the
// subscription and wait to be taken behind a slow reader are kept from
// redelivery by in-progress acks however long they wait, including those
// that arrived while every batch ahead of them was still being handed
// over. Before they were tracked on arrival, the last one waited untracked
// and came back after the ack wait (attempt 2).
func TestInProgressKeepsWaitingMessages(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithAckWait(time.Second), eknats.WithAckExtension(time.Minute))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("waiting"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// One event at a time, each once the one before reached the
	// subscription: e1 is taken, e2 waits to be handed over, e3 waits
	// behind it, e4 arrives while nothing is received.
	for i := 1; i <= 4; i++ {
		if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent(fmt.Sprint("e", i))); err != nil {
			t.Fatal(err)
		}
		waitAckPending(t, tr, ns, "waiting", i)
		if i == 1 {
			if m := take(t, s); m.Event.ID() != "e1" {
				t.Fatalf("got %q, want e1", m.Event.ID())
			}
		}
	}
	time.Sleep(3500 * time.Millisecond) // three and a half ack waits, nothing taken
	for i := 2; i <= 4; i++ {
		m := take(t, s)
		if want := fmt.Sprint("e", i); m.Event.ID() != want || m.Attempt != 1 {
			t.Fatalf("got %q attempt %d, want %q attempt 1", m.Event.ID(), m.Attempt, want)
		}
		_ = m.Ack()
	}
	quiet(t, s, 1500*time.Millisecond)
}

// TestCloseNacksBuffered: messages buffered and not taken when a
// subscription closes come back at once (with an ack wait of one minute,
// only the nack can bring them back within the test's wait).
func TestCloseNacksBuffered(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithAckWait(time.Minute))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = eventkittest.NewEvent("b-" + strconv.Itoa(i))
	}
	if err := tr.Publish(ctx, ns+".x", evs...); err != nil {
		t.Fatal(err)
	}
	held := take(t, s) // taken, never settled
	// Let the rest reach the subscription's buffer.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := consumerInfo(tr, ns, "g")
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := 0; i < n-1; i++ {
		m := take(t, s2)
		if m.Event.ID() == held.Event.ID() {
			t.Fatalf("the held message came back before its ack wait")
		}
		if m.Attempt != 2 {
			t.Errorf("%s: attempt %d, want 2", m.Event.ID(), m.Attempt)
		}
		_ = m.Ack()
	}
}

// waitAckPending waits (up to 10s) until the consumer has delivered n
// messages not yet settled.
func waitAckPending(t *testing.T, tr *eknats.Transport, stream, consumer string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := consumerInfo(tr, stream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages delivered and unsettled after 10s, want %d", info.NumAckPending, n)
		}
	}
}

func consumerInfo(tr *eknats.Transport, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := tr.JetStream().Consumer(context.Background(), stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(context.Background())
}

func TestMaxDeliver(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithMaxDeliver(2))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent("poison")); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		m := take(t, s)
		if m.Attempt != attempt {
			t.Fatalf("attempt %d, want %d", m.Attempt, attempt)
		}
		_ = m.Nack(errors.New("fails"))
	}
	quiet(t, s, time.Second)
}

func TestGroupPatternConflict(t *testing.T) {
	tr, ns := newTransport(t)
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".a", eventkit.WithGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := tr.Subscribe(ctx, ns+".b", eventkit.WithGroup("g")); err == nil {
		t.Fatal("a group joined with another pattern; want an error")
	}
}

// A subscription buffer of zero still delivers (one message held at a
// time), in order.
func TestZeroSubscriptionBuffer(t *testing.T) {
	tr, ns := newTransport(t, eknats.WithSubscriptionBuffer(0))
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, ns+".x")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 5; i++ {
		if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent(fmt.Sprint("z-", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		m := take(t, s)
		if want := fmt.Sprint("z-", i); m.Event.ID() != want {
			t.Fatalf("got %q, want %q", m.Event.ID(), want)
		}
		_ = m.Ack()
	}
}
