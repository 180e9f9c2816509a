package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
)

// TestInvalidOptionsRefused checks that Dial fails on an invalid option
// value, before any I/O, instead of replacing it with a default.
func TestInvalidOptionsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testkit.InvalidOptionsRefused(t, func(o ekmqtt.Option) error {
		// Port 1 is never dialled: the option is refused first.
		_, err := ekmqtt.Dial(ctx, "mqtt://127.0.0.1:1", o)
		return err
	}, testkit.CommonOptions[ekmqtt.Option]{WithMode: ekmqtt.WithMode, WithLogger: ekmqtt.WithLogger, WithCloseTimeout: ekmqtt.WithCloseTimeout},
		map[string]ekmqtt.Option{
			"WithQoS":           ekmqtt.WithQoS(3),
			"WithSessionExpiry": ekmqtt.WithSessionExpiry(10 * time.Millisecond),
		})
}

// TestCapabilitiesDeclared checks what the transport declares, and that
// what it lacks is refused at Subscribe: a consumer that retries by
// nacking (eventkit.Require(CapNack)), FromStart is not (no persistence),
// an unknown transport option and a Session at QoS 0 are invalid.
func TestCapabilitiesDeclared(t *testing.T) {
	for _, qos := range []byte{0, 1, 2} {
		tr := dial(t, ekmqtt.WithQoS(qos))
		if got, want := eventkit.CapabilitiesOf(tr), eventkit.CapWildcards|eventkit.CapConsumerGroups; got != want {
			t.Errorf("QoS %d: capabilities %s, want %s", qos, got, want)
		}
	}
	tr := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := eventkittest.UniqueName("ekcaps")
	_, err := tr.Subscribe(ctx, ns+".x", eventkit.Require(eventkit.CapNack|eventkit.CapNackDelay))
	var ce *eventkit.CapabilityError
	if !errors.As(err, &ce) || !errors.Is(err, eventkit.ErrUnsupported) || ce.Missing != eventkit.CapNack|eventkit.CapNackDelay {
		t.Errorf("Subscribe requiring nack: %v, want a CapabilityError missing nack|nack-delay", err)
	}
	if _, err := tr.Subscribe(ctx, ns+".x", eventkit.WithTransportOption(42)); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("Subscribe with an unknown transport option: %v, want ErrInvalidOption", err)
	}
	tr0 := dial(t, ekmqtt.WithQoS(0))
	if _, err := tr0.Subscribe(ctx, ns+".x", eventkit.WithTransportOption(ekmqtt.Session(ns))); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("Subscribe with a Session at QoS 0: %v, want ErrInvalidOption", err)
	}
}

// TestNackRefused checks that a Nack on MQTT, which cannot redeliver, is
// refused with a CapabilityError and does not acknowledge the message in
// its place: the persistent session gets it again when it comes back.
func TestNackRefused(t *testing.T) {
	tr := dial(t, ekmqtt.WithSessionExpiry(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := eventkittest.UniqueName("eknack")
	tp := ns + ".orders"
	opt := eventkit.WithTransportOption(ekmqtt.Session(ns + "-session"))
	s1 := testkit.Subscribe(t, ctx, tr, tp, opt)
	if err := tr.Publish(ctx, tp, eventkittest.NewEvent("failed")); err != nil {
		t.Fatal(err)
	}
	m := <-s1.Messages()
	err := m.Nack(errors.New("handler failed"))
	var ce *eventkit.CapabilityError
	if !errors.As(err, &ce) || !errors.Is(err, eventkit.ErrUnsupported) || ce.Missing != eventkit.CapNack {
		t.Fatalf("Nack: %v, want a CapabilityError missing nack", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := testkit.Subscribe(t, ctx, tr, tp, opt)
	defer s2.Close()
	select {
	case m := <-s2.Messages():
		if m.Event.ID() != "failed" {
			t.Fatalf("got %q after resuming the session, want the nacked event", m.Event.ID())
		}
		_ = m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the nacked message was acknowledged: not delivered again to the resumed session")
	}
}
