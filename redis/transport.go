package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/subs"
	"github.com/eventkit/eventkit/topic"
	goredis "github.com/redis/go-redis/v9"
)

// Defaults of the options.
const (
	DefaultPrefix           = "eventkit:"
	DefaultClaimIdle        = 30 * time.Second
	DefaultBlock            = time.Second
	DefaultDiscoverInterval = time.Second
	DefaultBuffer           = 100
)

// Option configures a Transport.
type Option func(*options)

type options struct {
	prefix     string
	maxLen     int64
	structured bool
	claimIdle  time.Duration
	block      time.Duration
	discover   time.Duration
	logger     *slog.Logger
}

// WithPrefix sets the prefix of stream keys and of the topic registry key
// (default "eventkit:"). Publishers and subscribers must agree on it.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithMaxLen trims each stream to about n entries on every XADD (MAXLEN ~ n).
// 0, the default, keeps everything. Trimmed entries that a group had not
// yet read are lost to it.
func WithMaxLen(n int64) Option { return func(o *options) { o.maxLen = n } }

// WithStructured publishes each event as one field in the CloudEvents JSON
// format instead of binary mode. Subscribers read both modes.
func WithStructured() Option { return func(o *options) { o.structured = true } }

// WithClaimIdle sets how long an entry may stay delivered and unsettled
// before a member of its group reclaims it (XAUTOCLAIM) and delivers it
// again (default 30s). It must exceed the longest handling time.
func WithClaimIdle(d time.Duration) Option { return func(o *options) { o.claimIdle = d } }

// WithBlock sets how long one XREADGROUP waits for new entries (default
// 1s). It bounds how long closing a subscription takes, and how late a
// nacked message may come back after its delay.
func WithBlock(d time.Duration) Option { return func(o *options) { o.block = d } }

// WithDiscoverInterval sets how often a pattern subscription looks for new
// topics (default 1s).
func WithDiscoverInterval(d time.Duration) Option { return func(o *options) { o.discover = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Transport publishes to and subscribes to Redis streams. It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent use.
type Transport struct {
	client goredis.UniversalClient
	o      options

	registered sync.Map // topic -> struct{}: recorded in the registry set
	closed     atomic.Bool
	subs       subs.Registry[*subscription]
}

// New returns a transport on client. Close does not close the client.
func New(client goredis.UniversalClient, opts ...Option) *Transport {
	o := options{
		prefix:    DefaultPrefix,
		claimIdle: DefaultClaimIdle,
		block:     DefaultBlock,
		discover:  DefaultDiscoverInterval,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.claimIdle <= 0 {
		o.claimIdle = DefaultClaimIdle
	}
	if o.block <= 0 {
		o.block = DefaultBlock
	}
	if o.discover <= 0 {
		o.discover = DefaultDiscoverInterval
	}
	return &Transport{client: client, o: o}
}

// StreamKey returns the key of the stream that holds topic.
func (t *Transport) StreamKey(topicName string) string { return t.o.prefix + topicName }

// RegistryKey returns the key of the set of topics published to.
func (t *Transport) RegistryKey() string { return t.o.prefix + "#topics" }

// Publish appends the events to the topic's stream, in order, in one
// pipeline, and returns when Redis has accepted all of them.
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	if t.closed.Load() {
		return eventkit.ErrClosed
	}
	if len(events) == 0 {
		return nil
	}
	key := t.StreamKey(name)
	_, known := t.registered.Load(name)
	cmds := make([]*goredis.StringCmd, len(events))
	var reg *goredis.IntCmd
	_, err := t.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if !known {
			// Recorded before the first XADD, so that a pattern subscription
			// that does not see the topic yet sees none of its entries.
			reg = p.SAdd(ctx, t.RegistryKey(), name)
		}
		for i := range events {
			vals, err := encode(events[i], t.o.structured)
			if err != nil {
				return fmt.Errorf("redis: publish: encode event %q: %w", events[i].ID(), err)
			}
			args := &goredis.XAddArgs{Stream: key, Values: vals}
			if t.o.maxLen > 0 {
				args.MaxLen, args.Approx = t.o.maxLen, true
			}
			cmds[i] = p.XAdd(ctx, args)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: publish to %q: %w", key, err)
	}
	if reg != nil && reg.Err() == nil {
		t.registered.Store(name, struct{}{})
	}
	return nil
}

// Subscribe starts a subscription to pattern; see the package documentation
// for groups, private groups and patterns. eventkit.WithBuffer bounds the
// entries read at once (default 100). It returns once the subscription's
// group exists on every stream it reads, so every event published after it
// returns is delivered.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("redis: subscribe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	s := newSubscription(t, pattern, cfg)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if !t.subs.Add(s) {
		_ = s.Close()
		return nil, eventkit.ErrClosed
	}
	s.run(ctx)
	return s, nil
}

func (t *Transport) forget(s *subscription) { t.subs.Remove(s) }

// Close ends every subscription (flushing their acks) and makes later
// publishes return eventkit.ErrClosed. It does not close the client.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.subs.CloseAll()
	return nil
}

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
