package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Invalid option values fail New (before, most were replaced by defaults
// or failed late), with an error wrapping eventkit.ErrInvalidOption that
// names the option.
func TestInvalidOptions(t *testing.T) {
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	construct := func(o eknats.Option) error {
		_, err := eknats.New(nc, o)
		return err
	}
	testkit.InvalidOptionsRefused(t, construct,
		testkit.CommonOptions[eknats.Option]{WithMode: eknats.WithMode, WithLogger: eknats.WithLogger, WithCloseTimeout: eknats.WithCloseTimeout},
		map[string]eknats.Option{
			"WithMaxInFlight":        eknats.WithMaxInFlight(0),
			"WithPublishAckTimeout":  eknats.WithPublishAckTimeout(-time.Second),
			"WithAckWait":            eknats.WithAckWait(0),
			"WithMaxDeliver":         eknats.WithMaxDeliver(0),
			"WithMaxAckPending":      eknats.WithMaxAckPending(-1),
			"WithFetchBatch":         eknats.WithFetchBatch(0),
			"WithSubscriptionBuffer": eknats.WithSubscriptionBuffer(-1),
			"WithInactiveThreshold":  eknats.WithInactiveThreshold(0),
			"WithSetupTimeout":       eknats.WithSetupTimeout(0),
			"WithMsgID":              eknats.WithMsgID(nil),
		})
	for _, c := range []eknats.StreamConfig{{Name: "a.b", Subjects: []string{"x"}}, {Name: "S"}} {
		if err := construct(eknats.WithStream(c)); !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), "nats.WithStream") {
			t.Errorf("WithStream(%+v): got %v, want ErrInvalidOption naming nats.WithStream", c, err)
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
	nc, ns := embeddedStream(t, "eknio")
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
