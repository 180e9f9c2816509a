package transport

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

// DefaultCloseTimeout bounds Close (see WithCloseTimeout).
const DefaultCloseTimeout = 10 * time.Second

// Option configures a Publisher, a Subscriber or a Transport. An option
// returns an error (wrapping eventkit.ErrInvalidOption) for an invalid
// value, and the constructor given it fails with that error.
type Option func(*config) error

type config struct {
	name         string
	logger       *slog.Logger
	closeTimeout time.Duration
}

// driverConfig checks the driver d and the options of the constructor
// ctor.
func driverConfig(ctor string, d any, opts []Option) (config, error) {
	if d == nil {
		return config{}, eventkit.InvalidOption(ctor, "the driver must not be nil")
	}
	return newConfig(opts)
}

func newConfig(opts []Option) (config, error) {
	c := config{name: "eventkit", logger: slog.Default(), closeTimeout: DefaultCloseTimeout}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// WithName names the transport in errors and logs ("redis: publish: ...");
// default "eventkit". The name must not be empty.
func WithName(name string) Option {
	return func(c *config) error { return NotEmpty("transport.WithName", name, &c.name) }
}

// WithLogger sets the logger of transient failures and dropped messages
// (default slog.Default()). The logger must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { return setLogger("transport.WithLogger", l, &c.logger) }
}

// WithCloseTimeout bounds Close: Close is Shutdown with a context that ends
// after d (default DefaultCloseTimeout). d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) error { return Positive("transport.WithCloseTimeout", d, &c.closeTimeout) }
}

// bounded calls shutdown with a context that ends after the close
// timeout: Close is Shutdown so bounded.
func (c *config) bounded(shutdown func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.closeTimeout)
	defer cancel()
	return shutdown(ctx)
}

// subscribeConfig checks the eventkit options of a Subscribe, and returns
// the capabilities they need and the driver's configuration.
func (c *config) subscribeConfig(pattern string, wildcard bool, caps eventkit.Capabilities, opts []eventkit.SubscribeOption) (driver.Config, error) {
	sc := eventkit.NewSubscribeConfig(opts...)
	if sc.Buffer < 0 {
		return driver.Config{}, eventkit.InvalidOption("eventkit.WithBuffer", "must not be negative, got "+strconv.Itoa(sc.Buffer))
	}
	starts := 0
	for _, set := range []bool{sc.FromStart, !sc.StartTime.IsZero(), sc.StartPosition != ""} {
		if set {
			starts++
		}
	}
	if starts > 1 {
		return driver.Config{}, eventkit.InvalidOption("eventkit.FromStart, StartAt, StartAtPosition", "at most one may be given")
	}
	dc := driver.Config{Group: sc.Group, FromStart: sc.FromStart, StartTime: sc.StartTime, StartPosition: sc.StartPosition, MaxBatch: sc.Buffer, Buffer: sc.Buffer}
	if dc.MaxBatch == 0 {
		dc.MaxBatch = driver.DefaultMaxBatch
	}
	var need eventkit.Capabilities
	var ops []string
	for _, o := range sc.Transport {
		if r, ok := o.(eventkit.Required); ok {
			need |= eventkit.Capabilities(r)
			ops = append(ops, "eventkit.Require("+eventkit.Capabilities(r).String()+")")
			continue
		}
		dc.Options = append(dc.Options, o)
	}
	if wildcard {
		need |= eventkit.CapWildcards
		ops = append(ops, "a pattern with wildcards")
	}
	if sc.Group != "" {
		need |= eventkit.CapConsumerGroups
		ops = append(ops, "a consumer group")
	}
	if sc.FromStart && caps.Has(eventkit.CapPersistent) {
		need |= eventkit.CapFromStart
		ops = append(ops, "FromStart")
	}
	if !sc.StartTime.IsZero() {
		need |= eventkit.CapStartAtTime
		ops = append(ops, "StartAt")
	}
	if sc.StartPosition != "" {
		need |= eventkit.CapStartAtPosition
		ops = append(ops, "StartAtPosition")
	}
	if m := caps.Missing(need); m != 0 {
		return driver.Config{}, &eventkit.CapabilityError{Transport: c.name, Op: "subscribe " + strconv.Quote(pattern) + " with " + joinOps(ops), Missing: m}
	}
	return dc, nil
}

// seekConf is the driver's configuration of a Seek, and the capability
// its starting point needs.
type seekConf struct {
	driver.Config
	need eventkit.Capabilities
}

// seekConfig checks the group and the starting point to of a Seek.
func (c *config) seekConfig(pattern, group string, caps eventkit.Capabilities, to eventkit.SubscribeOption) (seekConf, error) {
	if group == "" {
		return seekConf{}, eventkit.InvalidOption("eventkit.Seeker.Seek", "the group must not be empty")
	}
	if to == nil {
		return seekConf{}, eventkit.InvalidOption("eventkit.Seeker.Seek", "the starting point must not be nil")
	}
	sc := eventkit.NewSubscribeConfig(to)
	dc := seekConf{Config: driver.Config{Group: group, FromStart: sc.FromStart, StartTime: sc.StartTime, StartPosition: sc.StartPosition}}
	var op string
	for _, p := range []struct {
		set  bool
		cap  eventkit.Capabilities
		name string
	}{
		{sc.FromStart, eventkit.CapFromStart, "FromStart"},
		{!sc.StartTime.IsZero(), eventkit.CapStartAtTime, "StartAt"},
		{sc.StartPosition != "", eventkit.CapStartAtPosition, "StartAtPosition"},
	} {
		if !p.set {
			continue
		}
		if dc.need != 0 {
			return seekConf{}, eventkit.InvalidOption("eventkit.Seeker.Seek", "give one of eventkit.FromStart, StartAt and StartAtPosition, not two")
		}
		dc.need, op = p.cap, p.name
	}
	if dc.need == 0 || sc.Group != "" || sc.Buffer != 0 || len(sc.Transport) > 0 {
		return seekConf{}, eventkit.InvalidOption("eventkit.Seeker.Seek", "the starting point must be eventkit.FromStart, StartAt or StartAtPosition")
	}
	if m := caps.Missing(dc.need | eventkit.CapPersistent | eventkit.CapConsumerGroups); m != 0 {
		return seekConf{}, &eventkit.CapabilityError{Transport: c.name, Op: "seek group " + strconv.Quote(group) + " of " + strconv.Quote(pattern) + " with " + op, Missing: m}
	}
	return dc, nil
}

func joinOps(ops []string) string {
	s := ""
	for i, o := range ops {
		switch {
		case i == 0:
		case i == len(ops)-1:
			s += " and "
		default:
			s += ", "
		}
		s += o
	}
	return s
}
