package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	ps "github.com/apache/pulsar-client-go/pulsar"
	pslog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
)

// Defaults of the options.
const (
	DefaultTenant    = "public"
	DefaultNamespace = "default"
	// DefaultNackDelay is how long a nacked message waits before it is
	// delivered again.
	DefaultNackDelay = time.Second
)

// Option configures a Transport. An invalid value makes New or Dial fail
// with an error wrapping eventkit.ErrInvalidOption.
type Option func(*options) error

type options struct {
	transport.Common
	tenant, namespace string
	nackDelay         time.Duration
	dlqMax            int
	dlqTopic          string
}

// WithTenant sets the Pulsar tenant of every topic (default "public").
func WithTenant(name string) Option {
	return func(o *options) error { return transport.NotEmpty("pulsar.WithTenant", name, &o.tenant) }
}

// WithNamespace sets the Pulsar namespace, inside the tenant, of every
// topic (default "default").
func WithNamespace(name string) Option {
	return func(o *options) error { return transport.NotEmpty("pulsar.WithNamespace", name, &o.namespace) }
}

// WithNackDelay sets how long a nacked message waits before it is
// delivered again (default DefaultNackDelay).
func WithNackDelay(d time.Duration) Option {
	return func(o *options) error { return transport.Positive("pulsar.WithNackDelay", d, &o.nackDelay) }
}

// WithDeadLetter makes group subscriptions move an event delivered
// maxDeliveries times to the eventkit topic deadLetter (Pulsar's
// dead-letter policy), instead of delivering it again.
func WithDeadLetter(maxDeliveries int, deadLetter string) Option {
	return func(o *options) error {
		if err := transport.Positive("pulsar.WithDeadLetter", maxDeliveries, &o.dlqMax); err != nil {
			return err
		}
		return transport.NotEmpty("pulsar.WithDeadLetter", deadLetter, &o.dlqTopic)
	}
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout).
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error { return o.SetCloseTimeout(d) }
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option { return func(o *options) error { return o.SetLogger(l) } }

// Transport publishes to and subscribes to Pulsar topics. It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent
// use; its Publish, Subscribe, Shutdown and Close are those of the
// transport.Transport it is built on. See the package documentation for
// what it guarantees.
type Transport struct {
	*transport.Transport
	d *drv
}

// New returns a transport on client, which the caller owns: Close does not
// close it. New does no I/O.
func New(client ps.Client, opts ...Option) (*Transport, error) {
	if client == nil {
		return nil, eventkit.InvalidOption("pulsar.New", "the client must not be nil")
	}
	return newTransport(client, false, opts)
}

// Dial makes a client of the Pulsar service at url ("pulsar://host:6650")
// and returns a transport that owns it: Close closes it. The client
// connects lazily; ctx is unused but for symmetry with the other
// transports' Dial.
func Dial(_ context.Context, url string, opts ...Option) (*Transport, error) {
	// The client's own log (connections, reconnections at info level)
	// stays out; the transport logs what fails.
	client, err := ps.NewClient(ps.ClientOptions{URL: url, OperationTimeout: 30 * time.Second, Logger: pslog.DefaultNopLogger()})
	if err != nil {
		return nil, fmt.Errorf("pulsar: dial %s: %w", url, err)
	}
	t, err := newTransport(client, true, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	return t, nil
}

func newTransport(client ps.Client, owned bool, opts []Option) (*Transport, error) {
	o := options{
		Common:    transport.NewCommon("pulsar"),
		tenant:    DefaultTenant,
		namespace: DefaultNamespace,
		nackDelay: DefaultNackDelay,
	}
	o.Mode = eventkit.Structured
	if err := transport.Apply(&o, opts); err != nil {
		return nil, err
	}
	d := &drv{client: client, o: o, ownsClient: owned, producers: map[string]ps.Producer{}}
	pt, err := transport.New(d, d, o.Options()...)
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: pt, d: d}, nil
}

// Topic returns the full Pulsar topic name of an eventkit topic.
func (t *Transport) Topic(name string) string { return t.d.topic(name) }

var errNotStructured = errors.New("pulsar: the message is not in the CloudEvents JSON format")

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
	_ eventkit.Seeker     = (*Transport)(nil)
	_ driver.Publisher    = (*drv)(nil)
	_ driver.Subscriber   = (*drv)(nil)
)
