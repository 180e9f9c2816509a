package amqp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/transport"
	amqp "github.com/rabbitmq/amqp091-go"
)

// capabilities are what the AMQP driver guarantees. Quorum queues count
// deliveries (attempt count); a group's queue is durable (persistent); a
// nack requeues, after a delay the subscription holds the message for;
// publishes of a batch are pipelined under one wait for their confirms. A
// new queue starts empty: no FromStart.
const capabilities = eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack |
	eventkit.CapNackDelay | eventkit.CapAttemptCount | eventkit.CapPersistent | eventkit.CapBatchPublish

// Back-off of the reconnects, and the bound of one reconnect attempt.
const (
	minReconnectBackoff = 100 * time.Millisecond
	maxReconnectBackoff = 5 * time.Second
	reconnectTimeout    = 30 * time.Second
	// connPoll is how often connection polls a connection that closed
	// before manage noticed.
	connPoll = 20 * time.Millisecond
)

// drv is the AMQP driver: a driver.Publisher and a driver.Subscriber on
// one connection, which manage re-establishes whenever it is lost.
type drv struct {
	url string
	o   options

	mu     sync.Mutex
	conn   *amqp.Connection
	ready  chan struct{}       // closed while conn is usable
	queues map[string]struct{} // group queues declared

	pubMu sync.Mutex
	pubCh *amqp.Channel

	stop       chan struct{} // closed by stopping: waits for a connection end
	stopOnce   sync.Once
	life       context.Context // cancelled by Close
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	reconnects atomic.Uint64
}

// dial connects and declares the exchange within ctx, and starts
// managing the connection.
func dial(ctx context.Context, url string, o options) (*drv, error) {
	d := &drv{url: url, o: o, ready: make(chan struct{}), queues: map[string]struct{}{}, stop: make(chan struct{})}
	conn, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	close(d.ready)
	d.life, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.manage(conn)
	return d, nil
}

// connect dials the broker and declares the exchange, within ctx.
func (d *drv) connect(ctx context.Context) (*amqp.Connection, error) {
	cfg := d.o.config
	if cfg.Dial == nil {
		var nd net.Dialer
		cfg.Dial = func(network, addr string) (net.Conn, error) { return nd.DialContext(ctx, network, addr) }
	}
	c, err := amqp.DialConfig(d.url, cfg)
	if err != nil {
		return nil, fmt.Errorf("amqp: dial: %w", err)
	}
	ch, err := c.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(d.o.exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		if err == nil {
			_ = ch.Close()
		}
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("amqp: declare exchange %q: %w", d.o.exchange, err)
	}
	return c, nil
}

// manage re-establishes the connection whenever it is lost, until Close.
func (d *drv) manage(conn *amqp.Connection) {
	defer d.wg.Done()
	for {
		notify := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-d.life.Done():
			_ = conn.Close()
			return
		case e := <-notify:
			d.o.Logger.Warn("amqp: connection lost; reconnecting", "err", e)
		}
		d.mu.Lock()
		d.conn = nil
		d.ready = make(chan struct{})
		d.mu.Unlock()
		conn = d.reconnect()
		if conn == nil {
			return
		}
		d.mu.Lock()
		d.conn = conn
		close(d.ready)
		d.mu.Unlock()
		d.reconnects.Add(1)
	}
}

// reconnect dials until it succeeds (with a capped back-off), or returns
// nil once the driver is closed.
func (d *drv) reconnect() *amqp.Connection {
	backoff := minReconnectBackoff
	for {
		ctx, cancel := context.WithTimeout(d.life, reconnectTimeout)
		c, err := d.connect(ctx)
		cancel()
		if err == nil {
			if d.life.Err() != nil {
				_ = c.Close()
				return nil
			}
			return c
		}
		d.o.Logger.Warn("amqp: reconnect failed", "err", err, "backoff", backoff)
		select {
		case <-d.life.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxReconnectBackoff)
	}
}

// stopping makes the calls waiting for a connection return
// eventkit.ErrClosed: the transport is stopping.
func (d *drv) stopping() { d.stopOnce.Do(func() { close(d.stop) }) }

// Stopping implements driver.Stopper.
func (d *drv) Stopping(context.Context) { d.stopping() }

// connection returns the live connection, waiting for a reconnect until
// ctx ends or the transport stops.
func (d *drv) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		d.mu.Lock()
		c, r := d.conn, d.ready
		d.mu.Unlock()
		if c != nil && !c.IsClosed() {
			return c, nil
		}
		var poll <-chan time.Time
		if c != nil { // closed, and manage has not noticed yet
			r = nil
			poll = time.After(connPoll)
		}
		select {
		case <-r:
		case <-poll:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-d.stop:
			return nil, eventkit.ErrClosed
		}
	}
}

// current returns the connection if it is up, without waiting.
func (d *drv) current() *amqp.Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil || d.conn.IsClosed() {
		return nil
	}
	return d.conn
}

func (d *drv) addQueue(q string) {
	d.mu.Lock()
	d.queues[q] = struct{}{}
	d.mu.Unlock()
}

func (d *drv) groupQueues() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Keys(d.queues))
}

func (d *drv) Capabilities() eventkit.Capabilities { return capabilities }

// pubChannel returns the publishing channel (in confirm mode), opening it
// if needed. d.pubMu is held.
func (d *drv) pubChannel(ctx context.Context) (*amqp.Channel, error) {
	if d.pubCh != nil && !d.pubCh.IsClosed() {
		return d.pubCh, nil
	}
	c, err := d.connection(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	d.pubCh = ch
	return ch, nil
}

// SendBatch publishes the events, in order, pipelined, then waits for
// their confirms. What a lost channel left unconfirmed is published again
// on the next connection.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	msgs := make([]amqp.Publishing, len(events))
	for i := range events {
		p, err := encode(events[i], d.o.Mode == eventkit.Structured)
		if err != nil {
			return fmt.Errorf("amqp: publish: encode event %q: %w", events[i].ID(), err)
		}
		msgs[i] = p
	}
	for len(msgs) > 0 {
		n, err := d.publishOnce(ctx, name, msgs)
		msgs = msgs[n:]
		if err != nil && connectionLost(err) && ctx.Err() == nil {
			// The connection went down under the publish: wait for the
			// reconnect (pubChannel does) and publish the rest again. The
			// library may not have noticed yet: give it a moment.
			select {
			case <-time.After(connPoll):
				continue
			case <-ctx.Done():
				err = ctx.Err()
			case <-d.stop:
				return eventkit.ErrClosed
			}
		}
		if err != nil {
			var rejected rejectedError
			if errors.As(err, &rejected) {
				return fmt.Errorf("amqp: publish to %q: the broker rejected event %q", name, events[len(events)-len(msgs)].ID())
			}
			return fmt.Errorf("amqp: publish to %q: %w", name, err)
		}
	}
	return nil
}

// connectionLost reports whether err is a publish's failure because the
// connection or channel went down (it is then published again), rather
// than a refusal.
func connectionLost(err error) bool {
	var ne *net.OpError
	return errors.Is(err, amqp.ErrClosed) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// rejectedError is publishOnce's error for a message the broker nacked.
type rejectedError struct{}

func (rejectedError) Error() string { return "rejected by the broker" }

// publishOnce publishes msgs on the current channel and waits for their
// confirms. It returns how many were confirmed, and nil when the rest
// (if any) was lost with the channel and should be published again.
func (d *drv) publishOnce(ctx context.Context, name string, msgs []amqp.Publishing) (int, error) {
	d.pubMu.Lock()
	ch, err := d.pubChannel(ctx)
	if err != nil {
		d.pubMu.Unlock()
		return 0, err
	}
	dcs := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	var perr error
	for i := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, d.o.exchange, name, false, false, msgs[i])
		if err != nil {
			perr = err
			break
		}
		dcs = append(dcs, dc)
	}
	d.pubMu.Unlock()
	confirmed := 0
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return confirmed, fmt.Errorf("waiting for confirms: %w", err)
		}
		if !ok {
			if ch.IsClosed() {
				break // lost with the channel: publish again
			}
			return confirmed, rejectedError{}
		}
		confirmed++
	}
	if confirmed == len(msgs) {
		return confirmed, nil
	}
	if err := ctx.Err(); err != nil {
		return confirmed, err
	}
	if perr != nil && !ch.IsClosed() {
		return confirmed, perr
	}
	return confirmed, nil
}

// OpenSubscription declares and binds the subscription's queue and starts
// consuming it.
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if err := transport.NoSubscribeOptions("amqp", cfg.Options); err != nil {
		return nil, err
	}
	s := newSubscription(d, pattern, cfg)
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	if !s.private {
		d.addQueue(s.queue)
	}
	return s, nil
}

// Close closes the publishing channel, stops reconnecting and closes the
// connection.
func (d *drv) Close() error {
	d.stopping()
	d.pubMu.Lock()
	if d.pubCh != nil {
		_ = d.pubCh.Close()
		d.pubCh = nil
	}
	d.pubMu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

// Shutdown is Close within ctx: when ctx ends first (a broker that does
// not answer), it returns ctx's error and Close goes on.
func (d *drv) Shutdown(ctx context.Context) error { return within(ctx, d.Close) }

// within runs fn and waits for it until ctx ends.
func within(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("amqp: %w", context.Cause(ctx))
	}
}

var (
	_ driver.Publisher  = (*drv)(nil)
	_ driver.Subscriber = (*drv)(nil)
	_ driver.Shutdowner = (*drv)(nil)
	_ driver.Stopper    = (*drv)(nil)
)
