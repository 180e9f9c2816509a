package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of the options.
const (
	DefaultExchange      = "eventkit"
	DefaultPrefetch      = 100
	DefaultPrivateExpiry = time.Minute
)

// Option configures a Transport.
type Option func(*options)

type options struct {
	exchange      string
	structured    bool
	dlx           string
	deliveryLimit int
	privateExpiry time.Duration
	logger        *slog.Logger
	config        amqp.Config
}

// WithExchange sets the topic exchange (default "eventkit"), declared
// durable if it does not exist.
func WithExchange(name string) Option { return func(o *options) { o.exchange = name } }

// WithStructured publishes in structured mode (the CloudEvents JSON format
// as the body). Subscribers read both modes.
func WithStructured() Option { return func(o *options) { o.structured = true } }

// WithDeadLetterExchange declares the queues with this dead-letter
// exchange: messages rejected with an eventkit.Permanent error, or past
// the delivery limit, go there. The exchange must exist.
func WithDeadLetterExchange(name string) Option { return func(o *options) { o.dlx = name } }

// WithDeliveryLimit declares the queues with x-delivery-limit: a message
// that failed more than n deliveries (nacked, or its channel lost) is
// dead-lettered by the broker (or dropped without a dead-letter exchange).
// 0, the default, sets no limit.
func WithDeliveryLimit(n int) Option { return func(o *options) { o.deliveryLimit = n } }

// WithPrivateQueueExpiry sets how long the private queue of a subscription
// without a group outlives a lost connection (x-expires, default 1m).
func WithPrivateQueueExpiry(d time.Duration) Option {
	return func(o *options) { o.privateExpiry = d }
}

// WithConfig sets the amqp091 connection configuration (heartbeat, TLS,
// properties).
func WithConfig(c amqp.Config) Option { return func(o *options) { o.config = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Transport publishes to and subscribes to a RabbitMQ topic exchange. It
// implements eventkit.Publisher and eventkit.Subscriber, is safe for
// concurrent use, and reconnects by itself.
type Transport struct {
	url string
	o   options

	mu     sync.Mutex
	conn   *amqp.Connection
	ready  chan struct{} // closed while conn is usable
	subs   map[*subscription]struct{}
	queues map[string]struct{} // group queues declared

	pubMu sync.Mutex
	pubCh *amqp.Channel

	closed     atomic.Bool
	done       chan struct{}
	wg         sync.WaitGroup
	reconnects atomic.Uint64
}

// Reconnects returns how many times the connection was re-established.
func (t *Transport) Reconnects() uint64 { return t.reconnects.Load() }

// Dial connects to the broker at url (amqp://user:pass@host:port/vhost),
// declares the exchange, and returns a transport that keeps the connection
// up until Close.
func Dial(ctx context.Context, url string, opts ...Option) (*Transport, error) {
	o := options{exchange: DefaultExchange, privateExpiry: DefaultPrivateExpiry}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.config.Heartbeat == 0 {
		o.config.Heartbeat = 10 * time.Second
	}
	t := &Transport{url: url, o: o, ready: make(chan struct{}), subs: map[*subscription]struct{}{},
		queues: map[string]struct{}{}, done: make(chan struct{})}
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	t.conn = conn
	close(t.ready)
	t.wg.Add(1)
	go t.manage(conn)
	return t, nil
}

func (t *Transport) dial(ctx context.Context) (*amqp.Connection, error) {
	cfg := t.o.config
	if cfg.Dial == nil {
		d := net.Dialer{Timeout: 30 * time.Second}
		cfg.Dial = func(network, addr string) (net.Conn, error) { return d.DialContext(ctx, network, addr) }
	}
	c, err := amqp.DialConfig(t.url, cfg)
	if err != nil {
		return nil, fmt.Errorf("amqp: dial: %w", err)
	}
	ch2, err := c.Channel()
	if err == nil {
		err = ch2.ExchangeDeclare(t.o.exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		if err == nil {
			_ = ch2.Close()
		}
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("amqp: declare exchange %q: %w", t.o.exchange, err)
	}
	return c, nil
}

// manage re-establishes the connection whenever it is lost.
func (t *Transport) manage(conn *amqp.Connection) {
	defer t.wg.Done()
	for {
		notify := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-t.done:
			_ = conn.Close()
			return
		case e := <-notify:
			t.o.logger.Warn("amqp: connection lost; reconnecting", "err", e)
		}
		t.mu.Lock()
		t.conn = nil
		t.ready = make(chan struct{})
		t.mu.Unlock()
		backoff := 100 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c, err := t.dial(ctx)
			cancel()
			if err == nil {
				conn = c
				break
			}
			t.o.logger.Warn("amqp: reconnect failed", "err", err, "backoff", backoff)
			select {
			case <-t.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		t.mu.Lock()
		if t.closed.Load() {
			t.mu.Unlock()
			_ = conn.Close()
			return
		}
		t.conn = conn
		close(t.ready)
		t.mu.Unlock()
		t.reconnects.Add(1)
	}
}

// connection returns the live connection, waiting for a reconnect.
func (t *Transport) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		if t.closed.Load() {
			return nil, eventkit.ErrClosed
		}
		t.mu.Lock()
		c, r := t.conn, t.ready
		t.mu.Unlock()
		if c != nil && !c.IsClosed() {
			return c, nil
		}
		wait := r
		if c != nil { // closed, and manage has not noticed yet
			wait = nil
		}
		select {
		case <-wait:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.done:
			return nil, eventkit.ErrClosed
		}
	}
}

func (t *Transport) pubChannel(ctx context.Context) (*amqp.Channel, error) {
	if t.pubCh != nil && !t.pubCh.IsClosed() {
		return t.pubCh, nil
	}
	c, err := t.connection(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: confirm mode: %w", err)
	}
	t.pubCh = ch
	return ch, nil
}

// Publish sends the events, in order, to the exchange with the topic as
// routing key, and returns when the broker has confirmed all of them. If
// the connection is lost meanwhile, it waits for the reconnect (until ctx
// ends) and publishes again what was not confirmed.
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("amqp: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("amqp: publish: %w", err)
	}
	if t.closed.Load() {
		return eventkit.ErrClosed
	}
	msgs := make([]amqp.Publishing, len(events))
	for i := range events {
		p, err := encode(events[i], t.o.structured)
		if err != nil {
			return fmt.Errorf("amqp: publish: encode event %q: %w", events[i].ID(), err)
		}
		msgs[i] = p
	}
	for len(msgs) > 0 {
		t.pubMu.Lock()
		ch, err := t.pubChannel(ctx)
		if err != nil {
			t.pubMu.Unlock()
			return fmt.Errorf("amqp: publish to %q: %w", name, err)
		}
		dcs := make([]*amqp.DeferredConfirmation, 0, len(msgs))
		var perr error
		for _, m := range msgs {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, t.o.exchange, name, false, false, m)
			if err != nil {
				perr = err
				break
			}
			dcs = append(dcs, dc)
		}
		t.pubMu.Unlock()
		confirmed := 0
		for _, dc := range dcs {
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return fmt.Errorf("amqp: publish to %q: waiting for confirms: %w", name, err)
			}
			if !ok {
				if ch.IsClosed() {
					break // lost with the channel: publish again
				}
				return fmt.Errorf("amqp: publish to %q: the broker rejected event %q", name, events[len(events)-len(msgs)+confirmed].ID())
			}
			confirmed++
		}
		msgs = msgs[confirmed:]
		if len(msgs) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("amqp: publish to %q: %w", name, err)
		}
		if t.closed.Load() {
			return eventkit.ErrClosed
		}
		if perr != nil && !ch.IsClosed() {
			return fmt.Errorf("amqp: publish to %q: %w", name, perr)
		}
	}
	return nil
}

// Subscribe binds a queue to the exchange with the pattern's binding key and
// starts consuming; see the package documentation for groups and private
// queues. eventkit.WithBuffer sets the prefetch (default 100). It returns
// once the queue is bound, so every event published afterwards is
// delivered.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("amqp: subscribe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	s := newSubscription(t, pattern, cfg)
	ch, deliveries, err := s.setup(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		_ = ch.Close()
		return nil, eventkit.ErrClosed
	}
	t.subs[s] = struct{}{}
	if !s.private {
		t.queues[s.queue] = struct{}{}
	}
	t.mu.Unlock()
	s.start(ctx, ch, deliveries)
	return s, nil
}

// Queues returns the group queues this transport declared.
func (t *Transport) Queues() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.queues))
	for q := range t.queues {
		out = append(out, q)
	}
	return out
}

// Exchange returns the name of the transport's exchange.
func (t *Transport) Exchange() string { return t.o.exchange }

func (t *Transport) forget(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// Close ends every subscription (their unsettled messages are requeued),
// makes later publishes return eventkit.ErrClosed and closes the
// connection.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return nil
	}
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Close()
		}()
	}
	wg.Wait()
	close(t.done)
	t.wg.Wait()
	return nil
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
