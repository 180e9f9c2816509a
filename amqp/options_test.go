package amqp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
)

// TestInvalidOptionsRefused checks that Dial fails on an invalid option
// value, before any I/O, instead of replacing it with a default.
func TestInvalidOptionsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, o := range map[string]ekamqp.Option{
		"WithExchange":           ekamqp.WithExchange(""),
		"WithMode":               ekamqp.WithMode(eventkit.Mode(7)),
		"WithDeliveryLimit":      ekamqp.WithDeliveryLimit(-1),
		"WithPrivateQueueExpiry": ekamqp.WithPrivateQueueExpiry(time.Millisecond),
		"WithLogger":             ekamqp.WithLogger(nil),
		"WithCloseTimeout":       ekamqp.WithCloseTimeout(0),
	} {
		// Port 1 is never dialled: the option is refused first.
		if _, err := ekamqp.Dial(ctx, "amqp://guest:guest@127.0.0.1:1/", o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("Dial with an invalid %s: err %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestCapabilitiesAndUnknownOption(t *testing.T) {
	tr := dial(t, "ektest-"+t.Name())
	want := eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapPersistent | eventkit.CapBatchPublish
	if got := eventkit.CapabilitiesOf(tr); got != want {
		t.Errorf("capabilities %s, want %s", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tr.Subscribe(ctx, "caps.x", eventkit.WithTransportOption(42)); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("Subscribe with an unknown transport option: %v, want ErrInvalidOption", err)
	}
	if _, err := tr.Subscribe(ctx, "caps.x", eventkit.WithGroup("caps-g"), eventkit.FromStart()); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Errorf("Subscribe FromStart: %v, want ErrUnsupported (a new queue starts empty)", err)
	}
}
