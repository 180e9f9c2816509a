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
	transport.Common
	prefix    string
	maxLen    int64
	claimIdle time.Duration
	block     time.Duration
	discover  time.Duration
}

// WithPrefix sets the prefix of stream keys and of the topic registry key
// (default "eventkit:"). Publishers and subscribers must agree on it.
func WithPrefix(p string) Option { return func(o *options) error { o.prefix = p; return nil } }

// WithMaxLen trims each stream to about n entries on every XADD (MAXLEN ~ n).
// 0, the default, keeps everything; n must not be negative. Trimmed entries
// that a group had not yet read are lost to it.
func WithMaxLen(n int64) Option {
	return func(o *options) error { return transport.NotNegative("redis.WithMaxLen", n, &o.maxLen) }
}

// WithMode sets how events are written: eventkit.Binary (the default), or
// eventkit.Structured, one field holding the CloudEvents JSON format.
// Subscribers read both modes.
func WithMode(m eventkit.Mode) Option { return func(o *options) error { return o.SetMode(m) } }

// WithStructured is WithMode(eventkit.Structured).
//
// Deprecated: use WithMode(eventkit.Structured), the spelling every
// transport shares.
func WithStructured() Option { return WithMode(eventkit.Structured) }

// WithClaimIdle sets how long an entry may stay delivered and unsettled
// before a member of its group reclaims it (XAUTOCLAIM) and delivers it
// again (default 30s). It must exceed the longest handling time.
func WithClaimIdle(d time.Duration) Option {
	return func(o *options) error { return transport.Positive("redis.WithClaimIdle", d, &o.claimIdle) }
}

// WithBlock sets how long one XREADGROUP waits for new entries (default
// 1s). It bounds how long closing a subscription takes, and how late a
// nacked message may come back after its delay.
func WithBlock(d time.Duration) Option {
	return func(o *options) error { return transport.Positive("redis.WithBlock", d, &o.block) }
}

// WithDiscoverInterval sets how often a pattern subscription looks for new
// topics (default 1s).
func WithDiscoverInterval(d time.Duration) Option {
	return func(o *options) error { return transport.Positive("redis.WithDiscoverInterval", d, &o.discover) }
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout); use
// Shutdown to give the bound with a context.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error { return o.SetCloseTimeout(d) }
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option { return func(o *options) error { return o.SetLogger(l) } }

// Transport publishes to and subscribes to Redis streams. It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent
// use. Its Publish, Subscribe, Capabilities, Shutdown and Close are those
// of the transport.Transport it is built on (which gives it its
// validation, closed state, settle-once messages and graceful stop); on
// Redis they do this:
//
//   - Publish appends the events to the topic's stream, in order, in one
//     pipeline, and returns when Redis has accepted all of them.
//   - Subscribe starts a subscription to pattern; see the package
//     documentation for groups, private groups and patterns.
//     eventkit.WithBuffer bounds the entries read at once (default
//     DefaultBuffer). It returns once the subscription's group exists on
//     every stream it reads, so every event published after it returns is
//     delivered.
//   - Capabilities: wildcards, consumer groups, nack with a delay, attempt
//     counts, persistence, FromStart and pipelined batches.
//   - Shutdown ends every subscription (flushing their acks, destroying
//     their private groups) and makes later publishes return
//     eventkit.ErrClosed, within ctx. It closes the client only if Dial
//     made it. Close is Shutdown bounded by WithCloseTimeout.
type Transport struct {
	*transport.Transport
	d *drv
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
		Common:    transport.NewCommon("redis"),
		prefix:    DefaultPrefix,
		claimIdle: DefaultClaimIdle,
		block:     DefaultBlock,
		discover:  DefaultDiscoverInterval,
	}
	if err := transport.Apply(&o, opts); err != nil {
		return nil, err
	}
	d := &drv{client: client, o: o, ownsClient: owned}
	pt, err := transport.New(d, d, o.Options()...)
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: pt, d: d}, nil
}

// StreamKey returns the key of the stream that holds topic.
func (t *Transport) StreamKey(topicName string) string { return t.d.streamKey(topicName) }

// RegistryKey returns the key of the set of topics published to.
func (t *Transport) RegistryKey() string { return t.d.registryKey() }

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
	_ eventkit.Seeker     = (*Transport)(nil)
)
