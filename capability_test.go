package eventkit_test

import (
	"errors"
	"testing"

	"github.com/eventkit/eventkit"
)

func TestCapabilitiesString(t *testing.T) {
	for _, tc := range []struct {
		c    eventkit.Capabilities
		want string
	}{
		{0, "none"},
		{eventkit.CapNack, "nack"},
		{eventkit.CapWildcards | eventkit.CapNackDelay | eventkit.CapBatchPublish, "wildcards|nack-delay|batch-publish"},
		{1 << 20, "capability(20)"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", uint32(tc.c), got, tc.want)
		}
	}
}

func TestCapabilitiesHasMissing(t *testing.T) {
	c := eventkit.CapNack | eventkit.CapConsumerGroups
	if !c.Has(eventkit.CapNack) || !c.Has(0) || c.Has(eventkit.CapNack|eventkit.CapNackDelay) {
		t.Errorf("Has is wrong for %s", c)
	}
	if m := c.Missing(eventkit.CapNack | eventkit.CapNackDelay); m != eventkit.CapNackDelay {
		t.Errorf("Missing = %s, want nack-delay", m)
	}
}

type capable struct{}

func (capable) Capabilities() eventkit.Capabilities { return eventkit.CapPersistent }

func TestCapabilitiesOf(t *testing.T) {
	if c := eventkit.CapabilitiesOf(capable{}); c != eventkit.CapPersistent {
		t.Errorf("CapabilitiesOf = %s", c)
	}
	if c := eventkit.CapabilitiesOf(42); c != 0 {
		t.Errorf("CapabilitiesOf(42) = %s, want none", c)
	}
}

func TestCapabilityError(t *testing.T) {
	err := error(&eventkit.CapabilityError{Transport: "mqtt", Op: "nack", Missing: eventkit.CapNack})
	if !errors.Is(err, eventkit.ErrUnsupported) {
		t.Errorf("%v does not wrap ErrUnsupported", err)
	}
	if want := "mqtt: nack: unsupported: the transport lacks nack"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestRequire(t *testing.T) {
	cfg := eventkit.NewSubscribeConfig(eventkit.Require(eventkit.CapNack))
	if len(cfg.Transport) != 1 || cfg.Transport[0] != eventkit.Required(eventkit.CapNack) {
		t.Fatalf("Transport = %v", cfg.Transport)
	}
}

func TestMode(t *testing.T) {
	if eventkit.Binary.String() != "binary" || eventkit.Structured.String() != "structured" || eventkit.Mode(7).String() != "Mode(7)" {
		t.Error("Mode.String")
	}
	if !eventkit.Binary.Valid() || !eventkit.Structured.Valid() || eventkit.Mode(-1).Valid() {
		t.Error("Mode.Valid")
	}
}

func TestInvalidOption(t *testing.T) {
	err := eventkit.InvalidOption("redis.WithBlock", "must be positive, got -1s")
	if !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Fatalf("%v does not wrap ErrInvalidOption", err)
	}
	if want := "eventkit: invalid option: redis.WithBlock: must be positive, got -1s"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}
