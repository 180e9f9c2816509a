package transport_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/transport"
)

// options is a transport package's options, as every transport writes
// them: Common embedded, and options of its own.
type options struct {
	transport.Common
	count int
	wait  time.Duration
	label string
}

type option func(*options) error

// TestCommonDefaultsAndSetters: NewCommon gives the defaults; each Set
// method takes a valid value and refuses an invalid one with an error
// wrapping ErrInvalidOption that names the transport's option.
func TestCommonDefaultsAndSetters(t *testing.T) {
	c := transport.NewCommon("fake")
	if c.Name != "fake" || c.Mode != eventkit.Binary || c.Logger != slog.Default() || c.CloseTimeout != transport.DefaultCloseTimeout {
		t.Fatalf("NewCommon = %+v", c)
	}
	l := quietLogger()
	if err := errors.Join(c.SetMode(eventkit.Structured), c.SetLogger(l), c.SetCloseTimeout(time.Second)); err != nil {
		t.Fatal(err)
	}
	if c.Mode != eventkit.Structured || c.Logger != l || c.CloseTimeout != time.Second {
		t.Fatalf("after the setters: %+v", c)
	}
	for want, err := range map[string]error{
		"fake.WithMode: unknown mode Mode(7)":             c.SetMode(eventkit.Mode(7)),
		"fake.WithLogger: the logger must not be nil":     c.SetLogger(nil),
		"fake.WithCloseTimeout: must be positive, got 0s": c.SetCloseTimeout(0),
	} {
		if !errors.Is(err, eventkit.ErrInvalidOption) || err.Error() != eventkit.ErrInvalidOption.Error()+": "+want {
			t.Errorf("err %v, want ErrInvalidOption: %s", err, want)
		}
	}
	if c.Mode != eventkit.Structured || c.Logger != l || c.CloseTimeout != time.Second {
		t.Fatalf("a refused value changed the configuration: %+v", c)
	}
	d := newFake(allCaps)
	if _, err := transport.New(d, d, c.Options()...); err != nil {
		t.Fatalf("New with Options: %v", err)
	}
}

// TestApplyAndValidators: Apply runs the options in order, skips nil ones
// and stops at the first error; the validators set the value or refuse it.
func TestApplyAndValidators(t *testing.T) {
	withCount := func(n int) option {
		return func(o *options) error { return transport.NotNegative("fake.WithCount", n, &o.count) }
	}
	withWait := func(d time.Duration) option {
		return func(o *options) error { return transport.Positive("fake.WithWait", d, &o.wait) }
	}
	withLongWait := func(d time.Duration) option {
		return func(o *options) error { return transport.AtLeast("fake.WithLongWait", d, time.Second, &o.wait) }
	}
	withLabel := func(s string) option {
		return func(o *options) error { return transport.NotEmpty("fake.WithLabel", s, &o.label) }
	}
	o := options{Common: transport.NewCommon("fake")}
	if err := transport.Apply(&o, []option{withCount(0), nil, withCount(3), withWait(time.Millisecond), withLongWait(time.Second), withLabel("x")}); err != nil {
		t.Fatal(err)
	}
	if o.count != 3 || o.wait != time.Second || o.label != "x" {
		t.Fatalf("after Apply: count %d, wait %v, label %q", o.count, o.wait, o.label)
	}
	for _, c := range []struct {
		opt  option
		want string
	}{
		{withCount(-1), "fake.WithCount: must not be negative, got -1"},
		{withWait(0), "fake.WithWait: must be positive, got 0s"},
		{withLongWait(999 * time.Millisecond), "fake.WithLongWait: must be at least 1s, got 999ms"},
		{withLabel(""), "fake.WithLabel: must not be empty"},
	} {
		o := options{count: 5, wait: time.Minute, label: "y"}
		err := transport.Apply(&o, []option{c.opt, withCount(9)})
		if !errors.Is(err, eventkit.ErrInvalidOption) || err.Error() != eventkit.ErrInvalidOption.Error()+": "+c.want {
			t.Errorf("err %v, want ErrInvalidOption with %q", err, c.want)
		}
		if o.count != 5 || o.wait != time.Minute || o.label != "y" {
			t.Errorf("%q: the refused option or a later one was applied: %+v", c.want, o)
		}
	}
	if err := transport.NoSubscribeOptions("fake", nil); err != nil {
		t.Errorf("NoSubscribeOptions(nil) = %v", err)
	}
	if err := transport.NoSubscribeOptions("fake", []any{3}); !errors.Is(err, eventkit.ErrInvalidOption) ||
		err.Error() != eventkit.ErrInvalidOption.Error()+": eventkit.WithTransportOption: the fake transport has no subscription option of type int" {
		t.Errorf("NoSubscribeOptions([3]) = %v", err)
	}
}
