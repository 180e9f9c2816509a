package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
)

// Defaults of the options.
const (
	DefaultQoS           = 1
	DefaultSessionExpiry = time.Hour
	// DefaultBuffer is how many received messages a subscription holds
	// without eventkit.WithBuffer.
	DefaultBuffer = driver.DefaultMaxBatch
)

// Option configures a Transport. An invalid value makes Dial fail with an
// error wrapping eventkit.ErrInvalidOption.
type Option func(*options) error

type options struct {
	transport.Common
	qos           byte
	sessionExpiry time.Duration
	keepAlive     uint16
	username      string
	password      []byte
}

// WithQoS sets the QoS of publishes and subscriptions: 0 (at most once:
// nothing is acknowledged, and a persistent session keeps nothing), 1 (the
// default, at least once) or 2 (exactly once between client and broker).
// Another value is refused.
func WithQoS(q byte) Option {
	return func(o *options) error {
		if q > 2 {
			return eventkit.InvalidOption("mqtt.WithQoS", fmt.Sprintf("must be 0, 1 or 2, got %d", q))
		}
		o.qos = q
		return nil
	}
}

// WithMode sets how events are written: eventkit.Binary (the default, MQTT
// 5 properties), or eventkit.Structured (the CloudEvents JSON format as the
// payload, for MQTT 3.1.1 consumers). Subscribers read both modes.
func WithMode(m eventkit.Mode) Option { return func(o *options) error { return o.SetMode(m) } }

// WithStructured is WithMode(eventkit.Structured).
//
// Deprecated: use WithMode(eventkit.Structured), the spelling every
// transport shares.
func WithStructured() Option { return WithMode(eventkit.Structured) }

// WithSessionExpiry sets how long the broker keeps a persistent session
// (see Session) after its connection ends (default 1h). It must be at
// least a second (MQTT counts it in seconds).
func WithSessionExpiry(d time.Duration) Option {
	return func(o *options) error {
		return transport.AtLeast("mqtt.WithSessionExpiry", d, time.Second, &o.sessionExpiry)
	}
}

// WithCredentials sets the user name and password of the connections.
func WithCredentials(user string, password []byte) Option {
	return func(o *options) error { o.username, o.password = user, password; return nil }
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option { return func(o *options) error { return o.SetLogger(l) } }

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout);
// use Shutdown to give the bound with a context. d must be positive.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error { return o.SetCloseTimeout(d) }
}

type sessionOption string

// Session makes a subscription use a persistent session with client
// identifier id (clean start off, session expiry from WithSessionExpiry):
// QoS >= 1 events published while it is away are delivered when a
// subscription with the same id comes back. Pass it with
// eventkit.WithTransportOption. One connection per id at a time. It needs
// QoS 1 or 2: with WithQoS(0), Subscribe refuses it (eventkit.
// ErrInvalidOption), since the broker would keep nothing for the session.
func Session(id string) any { return sessionOption(id) }

// Transport publishes to and subscribes to an MQTT 5 broker. It
// implements eventkit.Publisher and eventkit.Subscriber and is safe for
// concurrent use. Its Publish, Subscribe, Capabilities, Shutdown and Close
// are those of the transport.Transport it is built on (which gives it its
// validation, closed state, settle-once messages, capability refusals and
// graceful stop); on MQTT they do this:
//
//   - Publish sends the events, in order, to the topic's MQTT topic name,
//     and returns when the broker acknowledged each (QoS 1: PUBACK, QoS 2:
//     PUBCOMP; at once for QoS 0). While the connection is down it waits
//     for the reconnect until ctx ends or the transport stops.
//   - Subscribe subscribes to pattern on a connection of its own; with
//     eventkit.WithGroup, as a shared subscription. It returns once the
//     broker acknowledged the subscription (SUBACK).
//   - Capabilities: wildcards and consumer groups (shared subscriptions).
//     MQTT has no nack (a Nack is refused, see the package documentation),
//     no attempt count, keeps no events for a group without members, and
//     gives no order across a shared subscription.
//   - Shutdown ends every subscription (sending the acks already made,
//     then disconnecting), makes later publishes return eventkit.ErrClosed
//     (those waiting for a reconnect return it at once, those waiting for
//     their acknowledgement when ctx ends too) and disconnects the
//     publisher, all within ctx. It returns every error met. Close is
//     Shutdown bounded by WithCloseTimeout.
type Transport struct {
	*transport.Transport
	d *drv
}

// Dial checks the options, connects a publisher to the broker at rawURL
// (mqtt://host:port, tls://...) within ctx, and returns a transport;
// connections are re-established automatically until Close.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Transport, error) {
	o := options{Common: transport.NewCommon("mqtt"), qos: DefaultQoS, sessionExpiry: DefaultSessionExpiry, keepAlive: 20}
	if err := transport.Apply(&o, opts); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mqtt: server URL: %w", err)
	}
	d, err := dial(ctx, u, o)
	if err != nil {
		return nil, err
	}
	pt, err := transport.New(d, d, o.Options()...)
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return &Transport{Transport: pt, d: d}, nil
}

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
