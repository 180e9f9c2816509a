package nats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Invalid option values fail New (before, most were replaced by defaults
// or failed late), with an error wrapping eventkit.ErrInvalidOption.
func TestInvalidOptions(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	cases := map[string]eknats.Option{
		"mode":           eknats.WithMode(eventkit.Mode(7)),
		"max in flight":  eknats.WithMaxInFlight(0),
		"ack timeout":    eknats.WithPublishAckTimeout(-time.Second),
		"ack wait":       eknats.WithAckWait(0),
		"max deliver":    eknats.WithMaxDeliver(0),
		"max ack":        eknats.WithMaxAckPending(-1),
		"fetch batch":    eknats.WithFetchBatch(0),
		"buffer":         eknats.WithSubscriptionBuffer(-1),
		"inactive":       eknats.WithInactiveThreshold(0),
		"setup timeout":  eknats.WithSetupTimeout(0),
		"close timeout":  eknats.WithCloseTimeout(0),
		"logger":         eknats.WithLogger(nil),
		"msg id":         eknats.WithMsgID(nil),
		"stream name":    eknats.WithStream(eknats.StreamConfig{Name: "a.b", Subjects: []string{"x"}}),
		"stream subject": eknats.WithStream(eknats.StreamConfig{Name: "S"}),
	}
	for name, o := range cases {
		if _, err := eknats.New(nc, o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := eknats.New(nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("nil connection: got %v, want ErrInvalidOption", err)
	}
	if _, err := eknats.Dial(context.Background(), "nats://127.0.0.1:1", eknats.WithAckWait(0)); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("Dial: got %v, want ErrInvalidOption", err)
	}
}

// A transport subscription option that the nats transport does not know
// is refused, not ignored.
func TestUnknownSubscriptionOption(t *testing.T) {
	tr, ns := newTransport(t)
	_, err := tr.Subscribe(context.Background(), ns+".x", eventkit.WithTransportOption(struct{ x int }{1}))
	if !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Fatalf("got %v, want ErrInvalidOption", err)
	}
}

// New does no I/O: the declared stream is made by EnsureStreams (or the
// first publish), not by New, which made it on context.Background().
func TestNewDoesNoIO(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	ns := eventkittest.UniqueName("eknio")
	t.Cleanup(func() { deleteStream(t, nc, ns) })
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, ns); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream after New: got %v, want ErrStreamNotFound (no I/O)", err)
	}
	if err := tr.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, ns); err != nil {
		t.Fatalf("stream after EnsureStreams: %v", err)
	}
}

// Dial connects and makes the declared streams within ctx, and Close
// closes the connection it made; a Dial that cannot connect returns when
// ctx ends.
func TestDial(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ns := eventkittest.UniqueName("ekdial")
	tr, err := eknats.Dial(ctx, url, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}}),
		eknats.WithConnectOptions(nats.Name("eventkit-dial-test")))
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_NATS_URL", url, err)
	}
	nc := connectServer(t)
	t.Cleanup(nc.Close)
	t.Cleanup(func() { deleteStream(t, nc, ns) })
	if _, err := tr.JetStream().Stream(ctx, ns); err != nil {
		t.Fatalf("stream after Dial: %v", err)
	}
	if err := tr.Publish(ctx, ns+".x", eventkittest.NewEvent("d")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.JetStream().Stream(ctx, ns); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("after Shutdown: got %v, want the connection closed", err)
	}

	// An address that does not answer (or refuses at once): Dial returns
	// by its ctx, not after nats.go's 2s connect timeout.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := eknats.Dial(short, "nats://10.255.255.1:4222"); err == nil {
		t.Fatal("Dial to an address that does not answer succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Dial took %s with a ctx of 300ms", d)
	}
}
