package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
	goredis "github.com/redis/go-redis/v9"
)

// Defaults of the options.
const (
	DefaultPrefix           = "eventkit:"
	DefaultClaimIdle        = 30 * time.Second
	DefaultBlock            = time.Second
	DefaultDiscoverInterval = time.Second
	// DefaultBuffer is how many entries a subscription reads at once
	// without eventkit.WithBuffer.
	DefaultBuffer = driver.DefaultMaxBatch
)

// Option configures a Transport. An invalid value makes New or Dial fail
// with an error wrapping eventkit.ErrInvalidOption.
type Option func(*options) error

type options struct {
	prefix       string
	maxLen       int64
	mode         eventkit.Mode
	claimIdle    time.Duration
	block        time.Duration
	discover     time.Duration
	logger       *slog.Logger
	closeTimeout time.Duration
}

// WithPrefix sets the prefix of stream keys and of the topic registry key
// (default "eventkit:"). Publishers and subscribers must agree on it.
func WithPrefix(p string) Option { return func(o *options) error { o.prefix = p; return nil } }

// WithMaxLen trims each stream to about n entries on every XADD (MAXLEN ~ n).
// 0, the default, keeps everything; n must not be negative. Trimmed entries
// that a group had not yet read are lost to it.
func WithMaxLen(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return eventkit.InvalidOption("redis.WithMaxLen", fmt.Sprintf("must not be negative, got %d", n))
		}
		o.maxLen = n
		return nil
	}
}

// WithMode sets how events are written: eventkit.Binary (the default), or
// eventkit.Structured, one field holding the CloudEvents JSON format.
// Subscribers read both modes.
func WithMode(m eventkit.Mode) Option {
	return func(o *options) error {
		if !m.Valid() {
			return eventkit.InvalidOption("redis.WithMode", "unknown mode "+m.String())
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

// positive is an option setting the duration field(o) to d, which must be
// positive.
func positive(name string, d time.Duration, field func(*options) *time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return eventkit.InvalidOption(name, "must be positive, got "+d.String())
		}
		*field(o) = d
		return nil
	}
}

// WithClaimIdle sets how long an entry may stay delivered and unsettled
// before a member of its group reclaims it (XAUTOCLAIM) and delivers it
// again (default 30s). It must exceed the longest handling time.
func WithClaimIdle(d time.Duration) Option {
	return positive("redis.WithClaimIdle", d, func(o *options) *time.Duration { return &o.claimIdle })
}

// WithBlock sets how long one XREADGROUP waits for new entries (default
// 1s). It bounds how long closing a subscription takes, and how late a
// nacked message may come back after its delay.
func WithBlock(d time.Duration) Option {
	return positive("redis.WithBlock", d, func(o *options) *time.Duration { return &o.block })
}

// WithDiscoverInterval sets how often a pattern subscription looks for new
// topics (default 1s).
func WithDiscoverInterval(d time.Duration) Option {
	return positive("redis.WithDiscoverInterval", d, func(o *options) *time.Duration { return &o.discover })
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout); use
// Shutdown to give the bound with a context.
func WithCloseTimeout(d time.Duration) Option {
	return positive("redis.WithCloseTimeout", d, func(o *options) *time.Duration { return &o.closeTimeout })
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return eventkit.InvalidOption("redis.WithLogger", "the logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// Transport publishes to and subscribes to Redis streams. It implements
// eventkit.Publisher and eventkit.Subscriber, is built on package transport
// (which gives it its validation, closed state, settle-once messages and
// graceful stop) and is safe for concurrent use.
type Transport struct {
	pt *transport.Transport
	d  *drv
}

// New returns a transport on client, which the caller owns: Close does not
// close it. New does no I/O.
func New(client goredis.UniversalClient, opts ...Option) (*Transport, error) {
	if client == nil {
		return nil, eventkit.InvalidOption("redis.New", "the client must not be nil")
	}
	return newTransport(client, false, opts)
}

// Dial connects to the Redis server at url (redis://[user:password@]host:port/db,
// rediss:// for TLS, or unix://path, as go-redis's ParseURL reads it),
// checks the connection with a PING bounded by ctx, and returns a
// transport that owns the client: Close closes it.
func Dial(ctx context.Context, url string, opts ...Option) (*Transport, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: dial: %w", err)
	}
	client := goredis.NewClient(ro)
	t, err := newTransport(client, true, opts)
	if err == nil {
		err = client.Ping(ctx).Err()
		if err != nil {
			err = fmt.Errorf("redis: dial %s: %w", ro.Addr, err)
		}
	}
	if err != nil {
		return nil, errors.Join(err, client.Close())
	}
	return t, nil
}

func newTransport(client goredis.UniversalClient, owned bool, opts []Option) (*Transport, error) {
	o := options{
		prefix:       DefaultPrefix,
		claimIdle:    DefaultClaimIdle,
		block:        DefaultBlock,
		discover:     DefaultDiscoverInterval,
		logger:       slog.Default(),
		closeTimeout: transport.DefaultCloseTimeout,
	}
	for _, f := range opts {
		if f == nil {
			continue
		}
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	d := &drv{client: client, o: o, ownsClient: owned}
	pt, err := transport.New(d, d, transport.WithName("redis"), transport.WithLogger(o.logger), transport.WithCloseTimeout(o.closeTimeout))
	if err != nil {
		return nil, err
	}
	return &Transport{pt: pt, d: d}, nil
}

// StreamKey returns the key of the stream that holds topic.
func (t *Transport) StreamKey(topicName string) string { return t.d.streamKey(topicName) }

// RegistryKey returns the key of the set of topics published to.
func (t *Transport) RegistryKey() string { return t.d.registryKey() }

// Capabilities returns what the transport guarantees: wildcards, consumer
// groups, nack with a delay, attempt counts, persistence, FromStart and
// pipelined batches.
func (t *Transport) Capabilities() eventkit.Capabilities { return t.pt.Capabilities() }

// Publish appends the events to the topic's stream, in order, in one
// pipeline, and returns when Redis has accepted all of them.
func (t *Transport) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return t.pt.Publish(ctx, topic, events...)
}

// Subscribe starts a subscription to pattern; see the package documentation
// for groups, private groups and patterns. eventkit.WithBuffer bounds the
// entries read at once (default DefaultBuffer). It returns once the
// subscription's group exists on every stream it reads, so every event
// published after it returns is delivered.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return t.pt.Subscribe(ctx, pattern, opts...)
}

// Shutdown ends every subscription (flushing their acks, destroying their
// private groups) and makes later publishes return eventkit.ErrClosed,
// within ctx. It closes the client only if Dial made it.
func (t *Transport) Shutdown(ctx context.Context) error { return t.pt.Shutdown(ctx) }

// Close is Shutdown bounded by WithCloseTimeout.
func (t *Transport) Close() error { return t.pt.Close() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func consumerName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
}

func isBusyGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP")
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
