package amqp

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of the options.
const (
	DefaultExchange = "eventkit"
	// DefaultPrefetch is the channel prefetch of a subscription without
	// eventkit.WithBuffer.
	DefaultPrefetch      = driver.DefaultMaxBatch
	DefaultPrivateExpiry = time.Minute
	// DefaultHeartbeat is the connection's heartbeat when WithConfig sets
	// none.
	DefaultHeartbeat = 10 * time.Second
)

// minPrivateExpiry is the shortest WithPrivateQueueExpiry.
const minPrivateExpiry = time.Second

// Option configures a Transport. An invalid value makes Dial fail with an
// error wrapping eventkit.ErrInvalidOption.
type Option func(*options) error

type options struct {
	transport.Common
	exchange      string
	dlx           string
	deliveryLimit int
	privateExpiry time.Duration
	config        amqp.Config
}

// WithExchange sets the topic exchange (default "eventkit"), declared
// durable if it does not exist. The name must not be empty (that is
// AMQP's default exchange, which is not a topic exchange).
func WithExchange(name string) Option {
	return func(o *options) error { return transport.NotEmpty("amqp.WithExchange", name, &o.exchange) }
}

// WithMode sets how events are written: eventkit.Binary (the default,
// attributes as headers), or eventkit.Structured (the CloudEvents JSON
// format as the body). Subscribers read both modes.
func WithMode(m eventkit.Mode) Option { return func(o *options) error { return o.SetMode(m) } }

// WithStructured is WithMode(eventkit.Structured).
//
// Deprecated: use WithMode(eventkit.Structured), the spelling every
// transport shares.
func WithStructured() Option { return WithMode(eventkit.Structured) }

// WithDeadLetterExchange declares the queues with this dead-letter
// exchange: messages rejected with an eventkit.Permanent error, or past
// the delivery limit, go there. The exchange must exist. "" (the default)
// sets none.
func WithDeadLetterExchange(name string) Option {
	return func(o *options) error { o.dlx = name; return nil }
}

// WithDeliveryLimit declares the queues with x-delivery-limit: a message
// that failed more than n deliveries (nacked, or its channel lost) is
// dead-lettered by the broker (or dropped without a dead-letter exchange).
// 0, the default, sets no limit; n must not be negative.
func WithDeliveryLimit(n int) Option {
	return func(o *options) error { return transport.NotNegative("amqp.WithDeliveryLimit", n, &o.deliveryLimit) }
}

// WithPrivateQueueExpiry sets how long the private queue of a subscription
// without a group outlives a lost connection (x-expires, default 1m). It
// must be at least a second.
func WithPrivateQueueExpiry(d time.Duration) Option {
	return func(o *options) error {
		return transport.AtLeast("amqp.WithPrivateQueueExpiry", d, minPrivateExpiry, &o.privateExpiry)
	}
}

// WithConfig sets the amqp091 connection configuration (heartbeat, TLS,
// properties). A zero Heartbeat is DefaultHeartbeat.
func WithConfig(c amqp.Config) Option { return func(o *options) error { o.config = c; return nil } }

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option { return func(o *options) error { return o.SetLogger(l) } }

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout);
// use Shutdown to give the bound with a context. d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error { return o.SetCloseTimeout(d) }
}

func newOptions(opts []Option) (options, error) {
	o := options{
		Common:        transport.NewCommon("amqp"),
		exchange:      DefaultExchange,
		privateExpiry: DefaultPrivateExpiry,
	}
	if err := transport.Apply(&o, opts); err != nil {
		return options{}, err
	}
	if o.config.Heartbeat == 0 {
		o.config.Heartbeat = DefaultHeartbeat
	}
	return o, nil
}

// Transport publishes to and subscribes to a RabbitMQ topic exchange. It
// implements eventkit.Publisher and eventkit.Subscriber, is safe for
// concurrent use, and reconnects by itself. Its Publish, Subscribe,
// Capabilities, Shutdown and Close are those of the transport.Transport it
// is built on (which gives it its validation, closed state, settle-once
// messages and graceful stop); on RabbitMQ they do this:
//
//   - Publish sends the events, in order, to the exchange with the topic as
//     routing key, and returns when the broker has confirmed all of them.
//     If the connection is lost meanwhile, it waits for the reconnect
//     (until ctx ends, or the transport stops) and publishes again what was
//     not confirmed.
//   - Subscribe binds a queue to the exchange with the pattern's binding
//     key and starts consuming; see the package documentation for groups
//     and private queues. eventkit.WithBuffer sets the prefetch (default
//     DefaultPrefetch). It returns once the queue is bound, so every event
//     published afterwards is delivered.
//   - Capabilities: wildcards, consumer groups, nack (with a delay),
//     attempt counts, persistent group queues and pipelined batches.
//   - Shutdown ends every subscription (their unsettled messages are
//     requeued, private queues deleted) and makes later publishes return
//     eventkit.ErrClosed; publishes waiting for a reconnect return
//     eventkit.ErrClosed at once. Then it closes the connection. All
//     within ctx; it returns every error met. Close is Shutdown bounded by
//     WithCloseTimeout.
type Transport struct {
	*transport.Transport
	d *drv
}

// Dial checks the options, connects to the broker at url
// (amqp://user:pass@host:port/vhost) and declares the exchange, within
// ctx, and returns a transport that keeps the connection up until Close.
func Dial(ctx context.Context, url string, opts ...Option) (*Transport, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	d, err := dial(ctx, url, o)
	if err != nil {
		return nil, err
	}
	pt, err := transport.New(d, d, o.Options()...)
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return &Transport{Transport: pt, d: d}, nil
}

// Reconnects returns how many times the connection was re-established.
func (t *Transport) Reconnects() uint64 { return t.d.reconnects.Load() }

// Queues returns the group queues this transport declared.
func (t *Transport) Queues() []string { return t.d.groupQueues() }

// Exchange returns the name of the transport's exchange.
func (t *Transport) Exchange() string { return t.d.o.exchange }

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
