package kafka

import (
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of a Transport.
const (
	// DefaultMaxInFlight bounds the records published and waiting for an
	// acknowledgement.
	DefaultMaxInFlight = 50000
	// DefaultBuffer is the number of messages a subscription holds
	// delivered but not yet taken (the Messages channel's buffer), and the
	// size of the batches in which it decodes the records it fetched.
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
)

type config struct {
	brokers        []string
	clientOpts     []kgo.Opt
	producerOpts   []kgo.Opt
	consumerOpts   []kgo.Opt
	mapper         TopicMapper
	structured     bool
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
		logger:         slog.Default(),
	}
}

// Option configures a Transport.
type Option func(*config)

// WithBrokers sets the seed brokers ("host:port").
func WithBrokers(addrs ...string) Option {
	return func(c *config) { c.brokers = append(c.brokers, addrs...) }
}

// WithClientOptions adds franz-go options to every client the transport
// makes (producer, consumers, admin): TLS, SASL, client id, ...
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

// WithProducerOptions adds franz-go options to the producer client only.
func WithProducerOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.producerOpts = append(c.producerOpts, opts...) }
}

// WithConsumerOptions adds franz-go options to each subscription's client
// only (for example kgo.Balancers, kgo.SessionTimeout, kgo.RebalanceTimeout).
func WithConsumerOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.consumerOpts = append(c.consumerOpts, opts...) }
}

// WithTopicMapper sets how eventkit topics map to Kafka topics (default
// PrefixMapper("")).
func WithTopicMapper(m TopicMapper) Option { return func(c *config) { c.mapper = m } }

// WithStructuredMode publishes in the binding's structured mode (the JSON
// event format as the record value) instead of binary mode. Subscriptions
// read both modes whatever this says.
func WithStructuredMode() Option { return func(c *config) { c.structured = true } }

// WithLinger makes the producer wait up to d for more records before it
// sends a batch (franz-go's default: 10 ms).
func WithLinger(d time.Duration) Option {
	return func(c *config) { c.producerOpts = append(c.producerOpts, kgo.ProducerLinger(d)) }
}

// WithBatchMaxBytes bounds the size of a produced record batch.
func WithBatchMaxBytes(n int32) Option {
	return func(c *config) { c.producerOpts = append(c.producerOpts, kgo.ProducerBatchMaxBytes(n)) }
}

// WithCompression sets the producer's compression codecs in order of
// preference (for example kgo.ZstdCompression(), kgo.NoCompression()).
func WithCompression(codecs ...kgo.CompressionCodec) Option {
	return func(c *config) {
		c.producerOpts = append(c.producerOpts, kgo.ProducerBatchCompression(codecs...))
	}
}

// WithMaxInFlight bounds the records published and not yet acknowledged
// (default DefaultMaxInFlight, franz-go's MaxBufferedRecords); Publish and
// PublishAsync wait for room.
func WithMaxInFlight(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxInFlight = n
		}
	}
}

// WithTopicCreation makes the transport create each Kafka topic it
// publishes or subscribes to (exact names) through the admin API, with the
// given partitions and replication factor (-1: the broker's default) and
// topic configs. Without it topics must exist, or the broker must create
// them (auto.create.topics.enable).
func WithTopicCreation(partitions int32, replicationFactor int16, configs map[string]*string) Option {
	return func(c *config) {
		c.create, c.partitions, c.replication, c.topicConfigs = true, partitions, replicationFactor, configs
	}
}

// WithDefaultBuffer sets how many messages a subscription holds delivered
// but not yet taken, for subscriptions that do not set eventkit.WithBuffer.
func WithDefaultBuffer(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.buffer = n
		}
	}
}

// WithCommitInterval sets how often subscriptions commit finished offsets.
func WithCommitInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.commitInterval = d
		}
	}
}

// WithRevokeTimeout bounds the wait of a revoked partition for its taken
// messages to be settled (default DefaultRevokeTimeout).
func WithRevokeTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.revokeTimeout = d
		}
	}
}

// WithMetadataMaxAge sets how often subscriptions refresh metadata: how
// soon a pattern subscription sees a topic created by another process.
// Topics created through this transport are seen at once.
func WithMetadataMaxAge(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.metadataMaxAge = d
		}
	}
}

// WithHeartbeatInterval sets the consumer-group heartbeat interval (default
// DefaultHeartbeatInterval).
func WithHeartbeatInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.heartbeat = d
		}
	}
}

// WithLogger sets the logger (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

var _ eventkit.Publisher = (*Transport)(nil)
var _ eventkit.Subscriber = (*Transport)(nil)
