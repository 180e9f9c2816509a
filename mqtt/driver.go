package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/randid"
	"github.com/eventkit/eventkit/topic"
)

// capabilities are what the MQTT driver guarantees: topic filters and
// shared subscriptions. MQTT cannot ask for a redelivery (no CapNack),
// does not count deliveries, keeps nothing for a shared subscription
// without members (no CapPersistent: a Session is one subscription's, not
// a group's), and publishes one event per round trip.
const capabilities = eventkit.CapWildcards | eventkit.CapConsumerGroups

// sendAcksInterval is how often paho sends the acknowledgements given
// (in the order of receipt, as MQTT requires).
const sendAcksInterval = 10 * time.Millisecond

// ackGrace is how long a subscription's stop waits, after its last acks
// were given to paho, before it disconnects: paho sends them on a ticker
// and forgets those unsent when the connection closes, and tells no one
// when they are sent.
const ackGrace = 5 * sendAcksInterval

// Connection settings.
const (
	connectTimeout    = 10 * time.Second
	maxConnectBackoff = 5 * time.Second
	resubscribeEvery  = time.Second
)

// drv is the MQTT driver: a driver.Publisher on the publisher's
// connection, and a driver.Subscriber whose subscriptions have a
// connection each.
type drv struct {
	server *url.URL
	o      options
	pub    *autopaho.ConnectionManager
	cancel context.CancelFunc

	stop     chan struct{} // closed by stopping
	stopOnce sync.Once
	// abortCtx is cancelled when a Shutdown's context ends: publishes
	// still waiting for their acknowledgement give up.
	abortCtx context.Context
	abort    context.CancelFunc
}

func dial(ctx context.Context, server *url.URL, o options) (*drv, error) {
	d := &drv{server: server, o: o, stop: make(chan struct{})}
	d.abortCtx, d.abort = context.WithCancel(context.Background())
	cm, cancel, err := d.connect(ctx, "eventkit-pub-"+randid.Hex(8), false, nil, nil)
	if err != nil {
		return nil, err
	}
	d.pub, d.cancel = cm, cancel
	return d, nil
}

// connect starts a connection manager and waits, within ctx, for its
// first connection.
func (d *drv) connect(ctx context.Context, clientID string, persistent bool,
	onUp func(*autopaho.ConnectionManager, *paho.Connack), onPublish func(paho.PublishReceived) (bool, error)) (*autopaho.ConnectionManager, context.CancelFunc, error) {
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{d.server},
		KeepAlive:                     d.o.keepAlive,
		CleanStartOnInitialConnection: !persistent,
		ReconnectBackoff:              func(n int) time.Duration { return min(100*time.Millisecond<<min(n, 6), maxConnectBackoff) },
		ConnectTimeout:                connectTimeout,
		ConnectUsername:               d.o.username,
		ConnectPassword:               d.o.password,
		OnConnectionUp:                onUp,
		OnConnectionDown: func() bool {
			d.o.Logger.Warn("mqtt: connection lost; reconnecting", "client", clientID)
			return true
		},
		OnConnectError: func(err error) {
			d.o.Logger.Warn("mqtt: connect failed", "client", clientID, "err", err)
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID},
	}
	if persistent {
		cfg.SessionExpiryInterval = uint32(d.o.sessionExpiry / time.Second)
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
		return nil, nil, fmt.Errorf("mqtt: connect to %s: %w", d.server.Redacted(), err)
	}
	return cm, cancel, nil
}

func (d *drv) Capabilities() eventkit.Capabilities { return capabilities }

// stopping makes the publishes waiting for a reconnect return
// eventkit.ErrClosed: the transport is stopping.
func (d *drv) stopping() { d.stopOnce.Do(func() { close(d.stop) }) }

// Stopping implements driver.Stopper: the publishes waiting for a
// reconnect return eventkit.ErrClosed at once, and those waiting for their
// acknowledgement when ctx ends.
func (d *drv) Stopping(ctx context.Context) {
	d.stopping()
	// Not stopped: once the stop is over, aborting is harmless.
	context.AfterFunc(ctx, d.abort)
}

// SendBatch publishes the events one after another, each acknowledged by
// the broker before the next is sent. While the connection is down it
// waits for the reconnect.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.abortCtx, cancel)()
	mt := topic.ToMQTT(name)
	for i := range events {
		props, payload, err := encode(events[i], d.o.Mode == eventkit.Structured)
		if err != nil {
			return fmt.Errorf("mqtt: publish: encode event %q: %w", events[i].ID(), err)
		}
		if err := d.publish(ctx, &paho.Publish{QoS: d.o.qos, Topic: mt, Payload: payload, Properties: props}); err != nil {
			return fmt.Errorf("mqtt: publish to %q: %w", mt, err)
		}
	}
	return nil
}

// publish sends p, waiting for the reconnect if the connection is down.
func (d *drv) publish(ctx context.Context, p *paho.Publish) error {
	for tries := 0; ; tries++ {
		_, err := d.pub.Publish(ctx, p)
		if err == nil {
			return nil
		}
		if d.abortCtx.Err() != nil {
			return fmt.Errorf("%w (the transport stopped: %w)", eventkit.ErrClosed, err)
		}
		if ctx.Err() != nil {
			return err
		}
		// Down: wait for the reconnect. Another error may be the
		// connection dropping mid-publish: a few more tries.
		// session.ErrNoConnection is the connection lost before autopaho
		// noticed: AwaitConnection returns at once until it does, so
		// the wait for it backs off (bounded by ctx and the stop).
		lost := errors.Is(err, session.ErrNoConnection)
		if !errors.Is(err, autopaho.ConnectionDownError) && !lost && tries >= 3 {
			return err
		}
		if lost {
			if err := d.pause(ctx, min(time.Millisecond<<min(tries, 7), 100*time.Millisecond)); err != nil {
				return err
			}
		}
		if err := d.awaitConnection(ctx); err != nil {
			return err
		}
	}
}

// pause waits for d, until ctx ends or the transport stops
// (eventkit.ErrClosed).
func (d *drv) pause(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-d.stop:
		return eventkit.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitConnection waits for the publisher's connection until ctx ends or
// the transport stops (eventkit.ErrClosed).
func (d *drv) awaitConnection(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := d.pub.AwaitConnection(ctx)
	select {
	case <-d.stop:
		return eventkit.ErrClosed
	default:
	}
	return err
}

// OpenSubscription connects the subscription and subscribes, within ctx.
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	return newSubscription(ctx, d, pattern, cfg)
}

// Close disconnects the publisher.
func (d *drv) Close() error { return d.Shutdown(context.Background()) }

// Shutdown disconnects the publisher within ctx.
func (d *drv) Shutdown(ctx context.Context) error {
	d.stopping()
	defer d.abort()
	return disconnect(ctx, d.pub, d.cancel)
}

// disconnect stops the connection manager (which disconnects) and waits
// for it within ctx.
func disconnect(ctx context.Context, cm *autopaho.ConnectionManager, cancel context.CancelFunc) error {
	err := cm.Disconnect(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("mqtt: disconnect: %w", err)
	}
	return nil
}

var (
	_ driver.Publisher  = (*drv)(nil)
	_ driver.Subscriber = (*drv)(nil)
	_ driver.Shutdowner = (*drv)(nil)
	_ driver.Stopper    = (*drv)(nil)
)
