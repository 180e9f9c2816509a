package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
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
	exchange      string
	mode          eventkit.Mode
	dlx           string
	deliveryLimit int
	privateExpiry time.Duration
	logger        *slog.Logger
	closeTimeout  time.Duration
	config        amqp.Config
}

// WithExchange sets the topic exchange (default "eventkit"), declared
// durable if it does not exist. The name must not be empty (that is
// AMQP's default exchange, which is not a topic exchange).
func WithExchange(name string) Option {
	return func(o *options) error {
		if name == "" {
			return eventkit.InvalidOption("amqp.WithExchange", "the exchange name must not be empty")
		}
		o.exchange = name
		return nil
	}
}

// WithMode sets how events are written: eventkit.Binary (the default,
// attributes as headers), or eventkit.Structured (the CloudEvents JSON
// format as the body). Subscribers read both modes.
func WithMode(m eventkit.Mode) Option {
	return func(o *options) error {
		if !m.Valid() {
			return eventkit.InvalidOption("amqp.WithMode", "unknown mode "+m.String())
		}
		o.mode = m
		return nil
	}
}

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
	return func(o *options) error {
		if n < 0 {
			return eventkit.InvalidOption("amqp.WithDeliveryLimit", fmt.Sprintf("must not be negative, got %d", n))
		}
		o.deliveryLimit = n
		return nil
	}
}

// WithPrivateQueueExpiry sets how long the private queue of a subscription
// without a group outlives a lost connection (x-expires, default 1m). It
// must be at least a second.
func WithPrivateQueueExpiry(d time.Duration) Option {
	return func(o *options) error {
		if d < minPrivateExpiry {
			return eventkit.InvalidOption("amqp.WithPrivateQueueExpiry", "must be at least 1s, got "+d.String())
		}
		o.privateExpiry = d
		return nil
	}
}

// WithConfig sets the amqp091 connection configuration (heartbeat, TLS,
// properties). A zero Heartbeat is DefaultHeartbeat.
func WithConfig(c amqp.Config) Option { return func(o *options) error { o.config = c; return nil } }

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return eventkit.InvalidOption("amqp.WithLogger", "the logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout);
// use Shutdown to give the bound with a context. d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return eventkit.InvalidOption("amqp.WithCloseTimeout", "must be positive, got "+d.String())
		}
		o.closeTimeout = d
		return nil
	}
}

func newOptions(opts []Option) (options, error) {
	o := options{
		exchange:      DefaultExchange,
		privateExpiry: DefaultPrivateExpiry,
		logger:        slog.Default(),
		closeTimeout:  transport.DefaultCloseTimeout,
	}
	for _, f := range opts {
		if f == nil {
			continue
		}
		if err := f(&o); err != nil {
			return options{}, err
		}
	}
	if o.config.Heartbeat == 0 {
		o.config.Heartbeat = DefaultHeartbeat
	}
	return o, nil
}

// Transport publishes to and subscribes to a RabbitMQ topic exchange. It
// implements eventkit.Publisher and eventkit.Subscriber, is built on
// package transport (which gives it its validation, closed state,
// settle-once messages and graceful stop), is safe for concurrent use, and
// reconnects by itself.
type Transport struct {
	pt *transport.Transport
	d  *drv
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
	pt, err := transport.New(d, d, transport.WithName("amqp"), transport.WithLogger(o.logger), transport.WithCloseTimeout(o.closeTimeout))
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return &Transport{pt: pt, d: d}, nil
}

// Reconnects returns how many times the connection was re-established.
func (t *Transport) Reconnects() uint64 { return t.d.reconnects.Load() }

// Queues returns the group queues this transport declared.
func (t *Transport) Queues() []string { return t.d.groupQueues() }

// Exchange returns the name of the transport's exchange.
func (t *Transport) Exchange() string { return t.d.o.exchange }

// Capabilities returns what the transport guarantees: wildcards, consumer
// groups, nack (with a delay), attempt counts, persistent group queues and
// pipelined batches.
func (t *Transport) Capabilities() eventkit.Capabilities { return t.pt.Capabilities() }

// Publish sends the events, in order, to the exchange with the topic as
// routing key, and returns when the broker has confirmed all of them. If
// the connection is lost meanwhile, it waits for the reconnect (until ctx
// ends, or the transport stops) and publishes again what was not
// confirmed.
func (t *Transport) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return t.pt.Publish(ctx, topic, events...)
}

// Subscribe binds a queue to the exchange with the pattern's binding key and
// starts consuming; see the package documentation for groups and private
// queues. eventkit.WithBuffer sets the prefetch (default DefaultPrefetch).
// It returns once the queue is bound, so every event published afterwards
// is delivered.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return t.pt.Subscribe(ctx, pattern, opts...)
}

// Shutdown ends every subscription (their unsettled messages are
// requeued, private queues deleted) and makes later publishes return
// eventkit.ErrClosed; publishes waiting for a reconnect return
// eventkit.ErrClosed at once. Then it closes the connection. All within
// ctx; it returns every error met.
func (t *Transport) Shutdown(ctx context.Context) error {
	t.d.stopping()
	return t.pt.Shutdown(ctx)
}

// Close is Shutdown bounded by WithCloseTimeout.
func (t *Transport) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), t.d.o.closeTimeout)
	defer cancel()
	return t.Shutdown(ctx)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
