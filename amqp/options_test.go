package amqp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/internal/testkit"
)

// TestInvalidOptionsRefused checks that Dial fails on an invalid option
// value, before any I/O, instead of replacing it with a default.
func TestInvalidOptionsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testkit.InvalidOptionsRefused(t, func(o ekamqp.Option) error {
		// Port 1 is never dialled: the option is refused first.
		_, err := ekamqp.Dial(ctx, "amqp://guest:guest@127.0.0.1:1/", o)
		return err
	}, testkit.CommonOptions[ekamqp.Option]{WithMode: ekamqp.WithMode, WithLogger: ekamqp.WithLogger, WithCloseTimeout: ekamqp.WithCloseTimeout},
		map[string]ekamqp.Option{
			"WithExchange":           ekamqp.WithExchange(""),
			"WithDeliveryLimit":      ekamqp.WithDeliveryLimit(-1),
			"WithPrivateQueueExpiry": ekamqp.WithPrivateQueueExpiry(time.Millisecond),
		})
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
