package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/subs"
	"github.com/eventkit/eventkit/topic"
)

// Defaults of the options.
const (
	DefaultQoS           = 1
	DefaultSessionExpiry = time.Hour
	DefaultBuffer        = 100
)

// sendAcksInterval is how often paho sends the acknowledgements given
// (in the order of receipt, as MQTT requires).
const sendAcksInterval = 10 * time.Millisecond

// Option configures a Transport.
type Option func(*options)

type options struct {
	qos           byte
	structured    bool
	sessionExpiry time.Duration
	keepAlive     uint16
	username      string
	password      []byte
	logger        *slog.Logger
}

// WithQoS sets the QoS of publishes and subscriptions: 0, 1 (default) or 2.
func WithQoS(q byte) Option { return func(o *options) { o.qos = min(q, 2) } }

// WithStructured publishes in structured mode (the CloudEvents JSON format
// as the payload), for MQTT 3.1.1 consumers.
func WithStructured() Option { return func(o *options) { o.structured = true } }

// WithSessionExpiry sets how long the broker keeps a persistent session
// (see Session) after its connection ends (default 1h).
func WithSessionExpiry(d time.Duration) Option { return func(o *options) { o.sessionExpiry = d } }

// WithCredentials sets the user name and password of the connections.
func WithCredentials(user string, password []byte) Option {
	return func(o *options) { o.username, o.password = user, password }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

type sessionOption string

// Session makes a subscription use a persistent session with client
// identifier id (clean start off, session expiry from WithSessionExpiry):
// QoS >= 1 events published while it is away are delivered when a
// subscription with the same id comes back. Pass it with
// eventkit.WithTransportOption. One connection per id at a time.
func Session(id string) any { return sessionOption(id) }

// Transport publishes to and subscribes to an MQTT 5 broker. It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent use.
type Transport struct {
	server *url.URL
	o      options
	pub    *autopaho.ConnectionManager
	cancel context.CancelFunc

	subs   subs.Registry[*subscription]
	closed atomic.Bool
}

// Dial connects a publisher to the broker at rawURL (mqtt://host:port,
// tls://...) and returns a transport; connections are re-established
// automatically until Close.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mqtt: server URL: %w", err)
	}
	o := options{qos: DefaultQoS, sessionExpiry: DefaultSessionExpiry, keepAlive: 20}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	t := &Transport{server: u, o: o}
	cm, cancel, err := t.connect(ctx, "eventkit-pub-"+randomHex(8), false, nil, nil)
	if err != nil {
		return nil, err
	}
	t.pub, t.cancel = cm, cancel
	return t, nil
}

// connect starts a connection manager and waits for its first connection.
func (t *Transport) connect(ctx context.Context, clientID string, persistent bool,
	onUp func(*autopaho.ConnectionManager, *paho.Connack), onPublish func(paho.PublishReceived) (bool, error)) (*autopaho.ConnectionManager, context.CancelFunc, error) {
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{t.server},
		KeepAlive:                     t.o.keepAlive,
		CleanStartOnInitialConnection: !persistent,
		ReconnectBackoff:              func(n int) time.Duration { return min(100*time.Millisecond<<min(n, 6), 5*time.Second) },
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               t.o.username,
		ConnectPassword:               t.o.password,
		OnConnectionUp:                onUp,
		OnConnectionDown: func() bool {
			t.o.logger.Warn("mqtt: connection lost; reconnecting", "client", clientID)
			return true
		},
		OnConnectError: func(err error) {
			t.o.logger.Warn("mqtt: connect failed", "client", clientID, "err", err)
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID},
	}
	if persistent {
		cfg.SessionExpiryInterval = uint32(max(t.o.sessionExpiry/time.Second, 1))
	}
	if onPublish != nil {
		cfg.ClientConfig.EnableManualAcknowledgment = true
		cfg.ClientConfig.SendAcksInterval = sendAcksInterval
		cfg.ClientConfig.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPublish}
	}
	cctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(cctx, cfg)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("mqtt: connect: %w", err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		cancel()
		<-cm.Done()
		return nil, nil, fmt.Errorf("mqtt: connect to %s: %w", t.server.Redacted(), err)
	}
	return cm, cancel, nil
}

// Publish sends the events, in order, to the topic's MQTT topic name, and
// returns when the broker acknowledged each (QoS 1: PUBACK, QoS 2:
// PUBCOMP). While the connection is down it waits for the reconnect until
// ctx ends.
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("mqtt: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("mqtt: publish: %w", err)
	}
	if t.closed.Load() {
		return eventkit.ErrClosed
	}
	mt := topic.ToMQTT(name)
	for i := range events {
		props, payload, err := encode(events[i], t.o.structured)
		if err != nil {
			return fmt.Errorf("mqtt: publish: encode event %q: %w", events[i].ID(), err)
		}
		p := &paho.Publish{QoS: t.o.qos, Topic: mt, Payload: payload, Properties: props}
		for tries := 0; ; tries++ {
			_, err := t.pub.Publish(ctx, p)
			if err == nil {
				break
			}
			if t.closed.Load() {
				return eventkit.ErrClosed
			}
			if ctx.Err() != nil {
				return fmt.Errorf("mqtt: publish to %q: %w", mt, err)
			}
			// Down: wait for the reconnect. Another error may be the
			// connection dropping mid-publish: a few more tries.
			if !errors.Is(err, autopaho.ConnectionDownError) && tries >= 3 {
				return fmt.Errorf("mqtt: publish to %q: %w", mt, err)
			}
			if err := t.pub.AwaitConnection(ctx); err != nil {
				return fmt.Errorf("mqtt: publish to %q: %w", mt, err)
			}
		}
	}
	return nil
}

// Subscribe subscribes to pattern on a connection of its own; with
// eventkit.WithGroup, as a shared subscription. It returns once the broker
// acknowledged the subscription (SUBACK).
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	s, err := newSubscription(ctx, t, pattern, cfg)
	if err != nil {
		return nil, err
	}
	if !t.subs.Add(s) {
		_ = s.Close()
		return nil, eventkit.ErrClosed
	}
	return s, nil
}

func (t *Transport) forget(s *subscription) { t.subs.Remove(s) }

// Close ends every subscription and disconnects.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.subs.CloseAll()
	disconnect(t.pub, t.cancel)
	return nil
}

func disconnect(cm *autopaho.ConnectionManager, cancel context.CancelFunc) {
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	defer c()
	_ = cm.Disconnect(ctx)
	cancel()
	<-cm.Done()
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
