package transport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
)

// Common is the configuration that every transport package's options
// share: the write mode, the logger and the close timeout. A transport's
// options struct embeds it (made by NewCommon), its WithMode, WithLogger
// and WithCloseTimeout call the Set methods, and its constructor passes
// Options to New. The Set methods refuse an invalid value with an error
// wrapping eventkit.ErrInvalidOption that names the transport's option
// ("redis.WithLogger"), as every option of every transport does.
type Common struct {
	// Name is the transport's name ("redis"): the prefix of its option
	// names in errors, and its name in package transport's errors and logs.
	Name string
	// Mode is how events are written (default eventkit.Binary).
	Mode eventkit.Mode
	// Logger receives transient failures and dropped messages (default
	// slog.Default()); never nil.
	Logger *slog.Logger
	// CloseTimeout bounds Close (default DefaultCloseTimeout); positive.
	CloseTimeout time.Duration
}

// NewCommon returns the defaults of the transport named name.
func NewCommon(name string) Common {
	return Common{Name: name, Mode: eventkit.Binary, Logger: slog.Default(), CloseTimeout: DefaultCloseTimeout}
}

// SetMode sets Mode; m must be eventkit.Binary or eventkit.Structured.
func (c *Common) SetMode(m eventkit.Mode) error {
	if !m.Valid() {
		return eventkit.InvalidOption(c.Name+".WithMode", "unknown mode "+m.String())
	}
	c.Mode = m
	return nil
}

// SetLogger sets Logger; l must not be nil.
func (c *Common) SetLogger(l *slog.Logger) error {
	return setLogger(c.Name+".WithLogger", l, &c.Logger)
}

// setLogger sets *dst to l, which must not be nil.
func setLogger(option string, l *slog.Logger, dst **slog.Logger) error {
	return opt.NotNil(option, "the logger", l, self[*slog.Logger])(dst)
}

// SetCloseTimeout sets CloseTimeout; d must be positive.
func (c *Common) SetCloseTimeout(d time.Duration) error {
	return Positive(c.Name+".WithCloseTimeout", d, &c.CloseTimeout)
}

// Options returns the options of New that carry c: the name, the logger
// and the close timeout.
func (c *Common) Options() []Option {
	return []Option{WithName(c.Name), WithLogger(c.Logger), WithCloseTimeout(c.CloseTimeout)}
}

// Apply calls each option of opts on o in order, skipping nil ones, and
// returns the first error. It is a transport constructor's loop over its
// own option type (func(*options) error).
func Apply[O any, F ~func(*O) error](o *O, opts []F) error {
	for _, f := range opts {
		if f == nil {
			continue
		}
		if err := f(o); err != nil {
			return err
		}
	}
	return nil
}

// The validating setters below are internal/opt's checks (one mechanism
// for every option of eventkit) in the shape of a setter: they write *dst
// themselves, for an option of a transport's own type.

// Positive sets *dst to v if v is positive; otherwise it returns an error
// wrapping eventkit.ErrInvalidOption that names option and v.
func Positive[N opt.Number](option string, v N, dst *N) error {
	return opt.Positive(option, v, self[N])(dst)
}

// NotNegative sets *dst to v if v is zero or more; otherwise it returns an
// error wrapping eventkit.ErrInvalidOption that names option and v.
func NotNegative[N opt.Number](option string, v N, dst *N) error {
	return opt.NotNegative(option, v, self[N])(dst)
}

// AtLeast sets *dst to v if v is at least least; otherwise it returns an
// error wrapping eventkit.ErrInvalidOption that names option and v.
func AtLeast[N opt.Number](option string, v, least N, dst *N) error {
	return opt.AtLeast(option, v, least, self[N])(dst)
}

// NotEmpty sets *dst to v if v is not empty; otherwise it returns an error
// wrapping eventkit.ErrInvalidOption that names option.
func NotEmpty(option, v string, dst *string) error {
	return opt.NotEmpty(option, v, self[string])(dst)
}

// self is the field of a setter: the destination itself.
func self[T any](p *T) *T { return p }

// NoSubscribeOptions is a driver's refusal of the transport options
// (eventkit.WithTransportOption) of a subscription when it takes none: nil
// if opts is empty, else an error wrapping eventkit.ErrInvalidOption that
// names the transport and the first option's type.
func NoSubscribeOptions(transport string, opts []any) error {
	if len(opts) == 0 {
		return nil
	}
	return eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("the %s transport has no subscription option of type %T", transport, opts[0]))
}
