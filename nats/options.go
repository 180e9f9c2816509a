package nats

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/transport"
	"github.com/nats-io/nats.go"
)

// Defaults of the options.
const (
	DefaultMaxInFlight       = 4096
	DefaultPublishAckTimeout = 5 * time.Second
	DefaultAckWait           = 30 * time.Second
	DefaultAckExtension      = 5 * time.Minute
	DefaultMaxAckPending     = 2048
	DefaultFetchBatch        = 512
	// DefaultSubscriptionBuffer is how many messages a subscription
	// requests ahead (requested or received, and not yet handed to package
	// transport), without eventkit.WithBuffer or WithSubscriptionBuffer.
	DefaultSubscriptionBuffer = 512
	DefaultInactiveThreshold  = time.Minute
	DefaultSetupTimeout       = 10 * time.Second
)

// Option configures a Transport. An invalid value makes New or Dial fail
// with an error wrapping eventkit.ErrInvalidOption.
type Option func(*config) error

type config struct {
	transport.Common
	streams        []StreamConfig
	auto           *StreamConfig
	autoPrefix     string
	updateStreams  bool
	maxInFlight    int
	pubAckTimeout  time.Duration
	ackWait        time.Duration
	maxDeliver     int
	maxAckPending  int
	fetchBatch     int
	buffer         int
	ackExtension   time.Duration
	inactive       time.Duration
	setupTimeout   time.Duration
	connect        []nats.Option
	msgID          func(topic string, id, source string) string
	retryBackoff   time.Duration
	maxRetryBackof time.Duration
}

func defaultConfig() config {
	return config{
		Common:         transport.NewCommon("nats"),
		maxInFlight:    DefaultMaxInFlight,
		pubAckTimeout:  DefaultPublishAckTimeout,
		ackWait:        DefaultAckWait,
		maxDeliver:     -1,
		maxAckPending:  DefaultMaxAckPending,
		fetchBatch:     DefaultFetchBatch,
		buffer:         DefaultSubscriptionBuffer,
		ackExtension:   DefaultAckExtension,
		inactive:       DefaultInactiveThreshold,
		setupTimeout:   DefaultSetupTimeout,
		msgID:          DefaultMsgID,
		retryBackoff:   50 * time.Millisecond,
		maxRetryBackof: time.Second,
		autoPrefix:     "EVENTKIT_",
	}
}

// newConfig applies opts to the defaults.
func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	if err := transport.Apply(&cfg, opts); err != nil {
		return config{}, err
	}
	if cfg.auto == nil && len(cfg.streams) == 0 {
		d := DefaultStreamConfig
		cfg.auto = &d
	}
	return cfg, nil
}

// WithStream declares a stream: it is created if missing, and checked if it
// exists; an existing stream with other settings is an error (a
// *StreamMismatchError) unless WithStreamUpdate is given. Topics are NATS
// subjects: every topic published or subscribed must fall in the subjects
// of a declared stream (or of an automatic one, see WithAutoStreams).
// Give the option once per stream. Declared streams are made by Dial or
// EnsureStreams, else on first use.
func WithStream(c StreamConfig) Option {
	return func(cfg *config) error {
		if err := checkStreamConfig(c); err != nil {
			return eventkit.InvalidOption("nats.WithStream", err.Error())
		}
		cfg.streams = append(cfg.streams, c)
		return nil
	}
}

// WithAutoStreams makes the transport create, on first use of a topic
// whose first token has no declared stream, a stream named
// "EVENTKIT_<token>" for the subjects "<token>" and "<token>.>", with the
// settings of template (its Name and Subjects are ignored). A transport
// given no WithStream uses automatic streams with DefaultStreamConfig.
func WithAutoStreams(template StreamConfig) Option {
	return func(cfg *config) error { t := template; cfg.auto = &t; return nil }
}

// WithStreamUpdate lets the transport update a declared stream that exists
// with other settings, instead of failing. The server refuses some
// changes (storage type, for instance).
func WithStreamUpdate() Option { return func(c *config) error { c.updateStreams = true; return nil } }

// WithMode sets how events are encoded: eventkit.Binary (the default) or
// eventkit.Structured. Subscribers read both modes.
func WithMode(m eventkit.Mode) Option {
	return func(c *config) error { return c.SetMode(m) }
}

// WithMaxInFlight bounds the publishes awaiting their JetStream ack
// (default 4096, positive), over all the transport's Publish calls; a
// publisher waits for room.
func WithMaxInFlight(n int) Option {
	return opt.Positive("nats.WithMaxInFlight", n, func(c *config) *int { return &c.maxInFlight })
}

// WithPublishAckTimeout bounds the wait for one publish ack before the
// event is sent again (default 5s, positive).
func WithPublishAckTimeout(d time.Duration) Option {
	return opt.Positive("nats.WithPublishAckTimeout", d, func(c *config) *time.Duration { return &c.pubAckTimeout })
}

// WithAckWait sets the consumers' ack wait: a delivered message that is
// neither settled nor extended for this long is delivered again (default
// 30s, positive). See WithAckExtension.
func WithAckWait(d time.Duration) Option {
	return opt.Positive("nats.WithAckWait", d, func(c *config) *time.Duration { return &c.ackWait })
}

// WithAckExtension keeps a delivered, unsettled message from being
// redelivered for up to d in total, by sending in-progress acks every
// third of the ack wait (default 5 minutes). After d the message is left
// to the ack wait and redelivered. d < 0 turns extension off.
func WithAckExtension(d time.Duration) Option {
	return func(c *config) error { c.ackExtension = d; return nil }
}

// WithMaxDeliver bounds the deliveries of one message (default -1, no
// bound; use the dead-letter middleware to give up on a message). After
// the last delivery JetStream stops delivering it to the consumer. n must
// be positive or -1.
func WithMaxDeliver(n int) Option {
	return opt.Set("nats.WithMaxDeliver", n, n <= 0 && n != -1, fmt.Sprintf("must be positive or -1, got %d", n), func(c *config) *int { return &c.maxDeliver })
}

// WithMaxAckPending bounds the messages a consumer (a group, or a
// subscription without group) has delivered and not yet settled (default
// 2048, positive).
func WithMaxAckPending(n int) Option {
	return opt.Positive("nats.WithMaxAckPending", n, func(c *config) *int { return &c.maxAckPending })
}

// WithFetchBatch sets the most messages one pull request asks for
// (default 512, positive). Requests never ask for more than the
// subscription's buffer has room for, so the messages it requests ahead
// stay within its buffer.
func WithFetchBatch(n int) Option {
	return opt.Positive("nats.WithFetchBatch", n, func(c *config) *int { return &c.fetchBatch })
}

// WithSubscriptionBuffer sets the buffer of subscriptions that do not set
// one with eventkit.WithBuffer (default 512; 0 holds one message at a
// time; not negative): the messages a subscription requests ahead of the
// application. Package transport holds at most two batches besides (of
// eventkit.WithBuffer messages, else driver.DefaultMaxBatch).
// eventkit.WithBuffer(100), which is driver.DefaultMaxBatch, cannot be told
// from no WithBuffer: the transport's buffer applies.
func WithSubscriptionBuffer(n int) Option {
	return opt.NotNegative("nats.WithSubscriptionBuffer", n, func(c *config) *int { return &c.buffer })
}

// WithInactiveThreshold sets how long the server keeps the consumer of a
// subscription without group after its client disappears without closing
// it (default 1 minute, positive). Group consumers are durable and kept.
func WithInactiveThreshold(d time.Duration) Option {
	return opt.Positive("nats.WithInactiveThreshold", d, func(c *config) *time.Duration { return &c.inactive })
}

// WithSetupTimeout bounds each stream and consumer management call
// (default 10s, positive). Dial, EnsureStreams, Subscribe and Publish retry
// a call that timed out (or met JetStream unavailable) until their ctx
// ends.
func WithSetupTimeout(d time.Duration) Option {
	return opt.Positive("nats.WithSetupTimeout", d, func(c *config) *time.Duration { return &c.setupTimeout })
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout,
// positive); use Shutdown to give the bound with a context.
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) error { return c.SetCloseTimeout(d) }
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { return c.SetLogger(l) }
}

// WithMsgID replaces how the JetStream de-duplication id (Nats-Msg-Id) of
// an event is made (not nil). The default is DefaultMsgID.
func WithMsgID(fn func(topic, id, source string) string) Option {
	return opt.Set("nats.WithMsgID", fn, fn == nil, "the function must not be nil", func(c *config) *func(topic, id, source string) string { return &c.msgID })
}

// WithConnectOptions gives Dial the options of the connection it makes
// (credentials, TLS, reconnection); New ignores them.
func WithConnectOptions(opts ...nats.Option) Option {
	return func(c *config) error { c.connect = append(c.connect, opts...); return nil }
}
