package transport_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
)

// options is a transport package's options, as every transport writes
// them: Common embedded, and options of its own.
type options struct {
	transport.Common
	count int
	wait  time.Duration
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
	for option, err := range map[string]error{
		"fake.WithMode":         c.SetMode(eventkit.Mode(7)),
		"fake.WithLogger":       c.SetLogger(nil),
		"fake.WithCloseTimeout": c.SetCloseTimeout(0),
	} {
		if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), option) {
			t.Errorf("%s: err %v, want ErrInvalidOption naming the option", option, err)
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
	o := options{Common: transport.NewCommon("fake")}
	if err := transport.Apply(&o, []option{withCount(0), nil, withCount(3), withWait(time.Millisecond), withLongWait(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if o.count != 3 || o.wait != time.Second {
		t.Fatalf("after Apply: count %d, wait %v", o.count, o.wait)
	}
	for _, c := range []struct {
		opt  option
		want string
	}{
		{withCount(-1), "fake.WithCount: must not be negative, got -1"},
		{withWait(0), "fake.WithWait: must be positive, got 0s"},
		{withLongWait(999 * time.Millisecond), "fake.WithLongWait: must be at least 1s, got 999ms"},
	} {
		o := options{count: 5, wait: time.Minute}
		err := transport.Apply(&o, []option{c.opt, withCount(9)})
		if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want ErrInvalidOption with %q", err, c.want)
		}
		if o.count != 5 || o.wait != time.Minute {
			t.Errorf("%q: the refused option or a later one was applied: %+v", c.want, o)
		}
	}
	if err := transport.NoSubscribeOptions("fake", nil); err != nil {
		t.Errorf("NoSubscribeOptions(nil) = %v", err)
	}
	if err := transport.NoSubscribeOptions("fake", []any{3}); !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), "fake transport has no subscription option of type int") {
		t.Errorf("NoSubscribeOptions([3]) = %v", err)
	}
}

// stoppingDriver is a fake driver whose publishes wait until the stop
// begins, as a publish waiting for a reconnect does.
type stoppingDriver struct {
	*fakeDriver
	entered  chan struct{} // closed by SendBatch
	stopping chan struct{} // closed by the first Stopping
	calls    int
}

func (d *stoppingDriver) Stopping(context.Context) {
	d.calls++
	if d.calls == 1 {
		close(d.stopping)
	}
}

func (d *stoppingDriver) SendBatch(ctx context.Context, name string, events []event.Event) error {
	close(d.entered)
	<-d.stopping
	return eventkit.ErrClosed
}

var _ driver.Stopper = (*stoppingDriver)(nil)

// TestShutdownTellsStopper: Shutdown calls a driver.Stopper's Stopping (once
// for a driver that is both publisher and subscriber) before it waits for
// the publishes in flight, so a publish the driver holds returns, and the
// stop ends well within its bound.
func TestShutdownTellsStopper(t *testing.T) {
	d := &stoppingDriver{fakeDriver: newFake(allCaps), entered: make(chan struct{}), stopping: make(chan struct{})}
	tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- tr.Publish(context.Background(), "a.b", newEvent("1")) }()
	<-d.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-published; !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("the held publish returned %v, want ErrClosed", err)
	}
	if d.calls != 1 {
		t.Fatalf("Stopping called %d times, want 1", d.calls)
	}
}
