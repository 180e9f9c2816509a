package kafka

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of a Transport.
const (
	// DefaultMaxInFlight bounds the records published and waiting for an
	// acknowledgement.
	DefaultMaxInFlight = 50000
	// DefaultBuffer is the size of the batches in which a subscription
	// without eventkit.WithBuffer decodes the records it fetched.
	DefaultBuffer = 256
	// DefaultCommitInterval is how often a subscription commits the offsets
	// of finished records.
	DefaultCommitInterval = 500 * time.Millisecond
	// DefaultRevokeTimeout bounds how long a revoked partition waits for its
	// taken messages to be settled before it is given up. It must stay below
	// the group's rebalance timeout (franz-go's default: 60s).
	DefaultRevokeTimeout = 30 * time.Second
	// DefaultMetadataMaxAge is how often subscriptions refresh metadata, and
	// so how soon a pattern subscription sees a topic created elsewhere.
	DefaultMetadataMaxAge = 30 * time.Second
	// DefaultHeartbeatInterval is the consumer-group heartbeat interval; a
	// group notices a joining member within about one interval.
	DefaultHeartbeatInterval = time.Second
	// DefaultCloseTimeout bounds Close (see WithCloseTimeout): the final
	// offset commits, the deletion of ephemeral groups and the flush of the
	// producer. Shutdown takes its bound from its context instead.
	DefaultCloseTimeout = 10 * time.Second
)

type config struct {
	brokers        []string
	clientOpts     []kgo.Opt
	producerOpts   []kgo.Opt
	consumerOpts   []kgo.Opt
	mapper         TopicMapper
	mode           eventkit.Mode
	maxInFlight    int
	create         bool
	partitions     int32
	replication    int16
	topicConfigs   map[string]*string
	buffer         int
	commitInterval time.Duration
	revokeTimeout  time.Duration
	metadataMaxAge time.Duration
	heartbeat      time.Duration
	closeTimeout   time.Duration
	logger         *slog.Logger
}

func defaults() config {
	return config{
		mapper:         PrefixMapper(""),
		maxInFlight:    DefaultMaxInFlight,
		buffer:         DefaultBuffer,
		commitInterval: DefaultCommitInterval,
		revokeTimeout:  DefaultRevokeTimeout,
		metadataMaxAge: DefaultMetadataMaxAge,
		heartbeat:      DefaultHeartbeatInterval,
		closeTimeout:   DefaultCloseTimeout,
		logger:         slog.Default(),
	}
}

// Option configures a Transport. An option given an invalid value makes New
// fail with an error wrapping eventkit.ErrInvalidOption; no value is
// silently replaced by its default.
type Option func(*config) error

// WithBrokers sets the seed brokers ("host:port"); an empty address is
// refused.
func WithBrokers(addrs ...string) Option {
	return func(c *config) error {
		for _, a := range addrs {
			if a == "" {
				return eventkit.InvalidOption("kafka.WithBrokers", "empty broker address")
			}
		}
		c.brokers = append(c.brokers, addrs...)
		return nil
	}
}

// WithClientOptions adds franz-go options to every client the transport
// makes (producer, consumers, admin): TLS, SASL, client id, ...
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(c *config) error { c.clientOpts = append(c.clientOpts, opts...); return nil }
}

// WithProducerOptions adds franz-go options to the producer client only.
func WithProducerOptions(opts ...kgo.Opt) Option {
	return func(c *config) error { c.producerOpts = append(c.producerOpts, opts...); return nil }
}

// WithConsumerOptions adds franz-go options to each subscription's client
// only (for example kgo.Balancers, kgo.SessionTimeout, kgo.RebalanceTimeout).
func WithConsumerOptions(opts ...kgo.Opt) Option {
	return func(c *config) error { c.consumerOpts = append(c.consumerOpts, opts...); return nil }
}

// WithTopicMapper sets how eventkit topics map to Kafka topics (default
// PrefixMapper("")); nil is refused.
func WithTopicMapper(m TopicMapper) Option {
	return opt.Set("kafka.WithTopicMapper", m, m == nil, "the mapper must not be nil", func(c *config) *TopicMapper { return &c.mapper })
}

// WithMode sets the binding mode the transport publishes in:
// eventkit.Binary (the default: attributes in "ce_" headers) or
// eventkit.Structured (the JSON event format as the record value).
// Subscriptions read both modes whatever this says.
func WithMode(m eventkit.Mode) Option {
	return opt.Set("kafka.WithMode", m, !m.Valid(), "unknown mode "+m.String(), func(c *config) *eventkit.Mode { return &c.mode })
}

// WithStructuredMode publishes in the binding's structured mode.
//
// Deprecated: use WithMode(eventkit.Structured).
func WithStructuredMode() Option { return WithMode(eventkit.Structured) }

// WithLinger makes the producer wait up to d for more records before it
// sends a batch (franz-go's default: 10 ms); d must not be negative (0
// sends at once).
func WithLinger(d time.Duration) Option {
	return opt.Check("kafka.WithLinger", d < 0, "must not be negative, got "+d.String(),
		func(c *config) { c.producerOpts = append(c.producerOpts, kgo.ProducerLinger(d)) })
}

// WithBatchMaxBytes bounds the size of a produced record batch; n must be
// positive.
func WithBatchMaxBytes(n int32) Option {
	return opt.Check("kafka.WithBatchMaxBytes", n <= 0, "must be positive, got "+strconv.Itoa(int(n)),
		func(c *config) { c.producerOpts = append(c.producerOpts, kgo.ProducerBatchMaxBytes(n)) })
}

// WithCompression sets the producer's compression codecs in order of
// preference (for example kgo.ZstdCompression(), kgo.NoCompression()).
func WithCompression(codecs ...kgo.CompressionCodec) Option {
	return func(c *config) error {
		c.producerOpts = append(c.producerOpts, kgo.ProducerBatchCompression(codecs...))
		return nil
	}
}

// WithMaxInFlight bounds the records published and not yet acknowledged
// (default DefaultMaxInFlight, franz-go's MaxBufferedRecords); Publish and
// PublishAsync wait for room. n must be positive.
func WithMaxInFlight(n int) Option {
	return opt.Positive("kafka.WithMaxInFlight", n, func(c *config) *int { return &c.maxInFlight })
}

// WithTopicCreation makes the transport create each Kafka topic it
// publishes or subscribes to (exact names) through the admin API, with the
// given partitions and replication factor (-1: the broker's default) and
// topic configs. Without it topics must exist, or the broker must create
// them (auto.create.topics.enable). Partitions and the replication factor
// must be positive or -1.
func WithTopicCreation(partitions int32, replicationFactor int16, configs map[string]*string) Option {
	return func(c *config) error {
		if partitions == 0 || partitions < -1 {
			return eventkit.InvalidOption("kafka.WithTopicCreation", "partitions must be positive or -1, got "+strconv.Itoa(int(partitions)))
		}
		if replicationFactor == 0 || replicationFactor < -1 {
			return eventkit.InvalidOption("kafka.WithTopicCreation", "the replication factor must be positive or -1, got "+strconv.Itoa(int(replicationFactor)))
		}
		c.create, c.partitions, c.replication, c.topicConfigs = true, partitions, replicationFactor, configs
		return nil
	}
}

// WithDefaultBuffer sets the size of the batches in which a subscription
// that does not set eventkit.WithBuffer decodes the records it fetched
// (the messages it holds are package transport's bound: two batches of
// driver.DefaultMaxBatch). n must be positive.
func WithDefaultBuffer(n int) Option {
	return opt.Positive("kafka.WithDefaultBuffer", n, func(c *config) *int { return &c.buffer })
}

// WithCommitInterval sets how often subscriptions commit finished offsets;
// d must be positive.
func WithCommitInterval(d time.Duration) Option {
	return opt.Positive("kafka.WithCommitInterval", d, func(c *config) *time.Duration { return &c.commitInterval })
}

// WithRevokeTimeout bounds the wait of a revoked partition for its taken
// messages to be settled (default DefaultRevokeTimeout); d must be
// positive.
func WithRevokeTimeout(d time.Duration) Option {
	return opt.Positive("kafka.WithRevokeTimeout", d, func(c *config) *time.Duration { return &c.revokeTimeout })
}

// WithMetadataMaxAge sets how often subscriptions refresh metadata: how
// soon a pattern subscription sees a topic created by another process.
// Topics created through this transport are seen at once. d must be
// positive.
func WithMetadataMaxAge(d time.Duration) Option {
	return opt.Positive("kafka.WithMetadataMaxAge", d, func(c *config) *time.Duration { return &c.metadataMaxAge })
}

// WithHeartbeatInterval sets the consumer-group heartbeat interval (default
// DefaultHeartbeatInterval); d must be positive.
func WithHeartbeatInterval(d time.Duration) Option {
	return opt.Positive("kafka.WithHeartbeatInterval", d, func(c *config) *time.Duration { return &c.heartbeat })
}

// WithCloseTimeout bounds Close, of the transport and of each subscription
// (default DefaultCloseTimeout): the final offset commits, the deletion of
// ephemeral groups and the flush of the producer. Close is Shutdown with a
// context that ends after d. d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return opt.Positive("kafka.WithCloseTimeout", d, func(c *config) *time.Duration { return &c.closeTimeout })
}

// WithLogger sets the logger (slog.Default() otherwise); nil is refused.
func WithLogger(l *slog.Logger) Option {
	return opt.NotNil("kafka.WithLogger", "the logger", l, func(c *config) **slog.Logger { return &c.logger })
}

var _ eventkit.Publisher = (*Transport)(nil)
var (
	_ eventkit.Subscriber = (*Transport)(nil)
	_ eventkit.Seeker     = (*Transport)(nil)
)
