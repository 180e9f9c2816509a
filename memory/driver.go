package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
)

// bus is the driver: the driver.Publisher and the driver.Subscriber under
// Bus. Package transport has validated every topic, pattern and event it is
// given, and calls nothing after Close.
type bus struct {
	mu     sync.Mutex // guards trie changes, groups, queues
	trie   *topic.Trie[*queue]
	groups map[string]*queue
	queues map[*queue]struct{}
	closed atomic.Bool
	done   chan struct{} // closed by shut: wakes blocked publishers

	routes atomic.Pointer[routeCache]

	dropped   atomic.Uint64
	published atomic.Uint64
	redeliver sync.WaitGroup
}

// routeCache remembers, per topic, the queues whose pattern matches. It is
// replaced whenever a subscription starts or ends.
type routeCache struct {
	m sync.Map // topic -> []*queue
	n atomic.Int64
}

const maxCachedTopics = 4096

func newBus() *bus {
	b := &bus{
		trie:   topic.NewTrie[*queue](),
		groups: make(map[string]*queue),
		queues: make(map[*queue]struct{}),
		done:   make(chan struct{}),
	}
	b.routes.Store(&routeCache{})
	return b
}

// Capabilities implements driver.Publisher and driver.Subscriber: the
// features that memory/bus_test.go's conformance run claims.
func (b *bus) Capabilities() eventkit.Capabilities {
	return eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack |
		eventkit.CapNackDelay | eventkit.CapAttemptCount | eventkit.CapOrderPerKey |
		eventkit.CapBatchPublish
}

func (b *bus) lookup(name string) []*queue {
	rc := b.routes.Load()
	if v, ok := rc.m.Load(name); ok {
		return v.([]*queue)
	}
	qs := b.trie.Match(name, nil)
	if rc.n.Add(1) > maxCachedTopics {
		b.routes.CompareAndSwap(rc, &routeCache{})
	} else {
		rc.m.Store(name, qs)
	}
	return qs
}

// SendBatch implements driver.Publisher: each event goes, as a copy, to
// every queue whose pattern matches.
func (b *bus) SendBatch(ctx context.Context, name string, events []event.Event) error {
	if b.closed.Load() {
		return eventkit.ErrClosed
	}
	qs := b.lookup(name)
	for i := range events {
		for _, q := range qs {
			if err := q.push(ctx, newDelivery(q, name, events[i])); err != nil {
				if errors.Is(err, errQueueGone) {
					continue
				}
				return fmt.Errorf("memory: publish to %q (subscription %q): %w", name, q.pattern, err)
			}
			b.published.Add(1)
		}
	}
	return nil
}

// OpenSubscription implements driver.Subscriber: a lone subscription gets a
// queue of its own; a group's members share the group's queue.
func (b *bus) OpenSubscription(_ context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	size, policy := DefaultBuffer, Block
	for _, o := range cfg.Options {
		switch o := o.(type) {
		case policyOption:
			if p := Policy(o); p != Block && p != DropOldest && p != Fail {
				return nil, eventkit.InvalidOption("memory.WithPolicy", "unknown policy "+p.String())
			}
			policy = Policy(o)
		case bufferOption:
			size = int(o)
		default:
			return nil, eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("memory does not know the option %T", o))
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var q *queue
	if cfg.Group != "" {
		q = b.groups[cfg.Group]
		if q != nil && q.pattern != pattern {
			return nil, fmt.Errorf("memory: subscribe: group %q already subscribes to %q, not %q", cfg.Group, q.pattern, pattern)
		}
	}
	if q == nil {
		q = newQueue(b, pattern, cfg.Group, size, policy)
		if err := b.trie.Insert(pattern, q); err != nil {
			return nil, err
		}
		b.queues[q] = struct{}{}
		if cfg.Group != "" {
			b.groups[cfg.Group] = q
		}
		b.routes.Store(&routeCache{})
	}
	q.members++
	s := &sub{q: q}
	if cfg.Group != "" {
		return &member{sub: s}, nil
	}
	return s, nil
}

// shut wakes every blocked publisher, which returns eventkit.ErrClosed, and
// refuses every later SendBatch: Bus.Close calls it before package
// transport waits for the publishes in flight.
func (b *bus) shut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed.Swap(true) {
		close(b.done)
	}
}

// Close implements driver.Publisher and driver.Subscriber. Package
// transport calls it once, after every subscription closed (so every queue
// is gone): it waits for the redeliveries they woke.
func (b *bus) Close() error {
	b.shut()
	b.redeliver.Wait()
	return nil
}

// remove drops one member of q, and q with its last member.
func (b *bus) leave(q *queue) {
	b.mu.Lock()
	q.members--
	if q.members > 0 {
		b.mu.Unlock()
		return
	}
	delete(b.queues, q)
	b.trie.Remove(q.pattern, q)
	if q.group != "" && b.groups[q.group] == q {
		delete(b.groups, q.group)
	}
	b.routes.Store(&routeCache{})
	b.mu.Unlock()
	close(q.done)
}

var errQueueGone = errors.New("subscription ended")

// queue is the buffer of one lone subscription or one group.
type queue struct {
	bus     *bus
	pattern string
	group   string
	policy  Policy
	members int // guarded by bus.mu

	ch   chan *delivery
	done chan struct{} // closed when the last member left
}

func newQueue(b *bus, pattern, group string, size int, p Policy) *queue {
	return &queue{bus: b, pattern: pattern, group: group, policy: p,
		ch: make(chan *delivery, size), done: make(chan struct{})}
}

// push queues d by q's policy. A delivery pushed while the queue's last
// member leaves is lost with the queue, as the events buffered then.
func (q *queue) push(ctx context.Context, d *delivery) error {
	select {
	case q.ch <- d:
		return nil
	default:
	}
	select {
	case <-q.done:
		return errQueueGone
	default:
	}
	switch q.policy {
	case Fail:
		d.release()
		return eventkit.ErrBufferFull
	case DropOldest:
		for {
			select {
			case q.ch <- d:
				return nil
			default:
			}
			select {
			case old := <-q.ch:
				old.release()
				q.bus.dropped.Add(1)
			default:
			}
		}
	}
	select {
	case q.ch <- d:
		return nil
	case <-q.done:
		return errQueueGone
	case <-q.bus.done:
		return eventkit.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requeue queues d again after delay, for a nack or a group member that
// left before its messages were taken.
func (q *queue) requeue(d *delivery, delay time.Duration) error {
	select {
	case <-q.done:
		return eventkit.ErrClosed
	default:
	}
	if delay <= 0 {
		select {
		case q.ch <- d:
			return nil
		default:
		}
	}
	b := q.bus
	// Add under b.mu, where shut sets closed: an Add never races with
	// Close's Wait.
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return eventkit.ErrClosed
	}
	b.redeliver.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.redeliver.Done()
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-q.done:
				return
			}
		}
		select {
		case q.ch <- d:
		case <-q.done:
		}
	}()
	return nil
}

// delivery is the event of one publish to one queue (a lone subscription or
// a group), and the AckID of its message. It keeps the event as published
// (orig), which nothing hands out, so that every message gets a copy of
// it: the handler of one delivery may change its event (extensions,
// attributes, data, even the data bytes in place) without the publisher,
// another subscription or a redelivery seeing it.
//
// One message of a delivery is in flight at a time. Once it is acked
// nothing can ask for another, so the delivery goes back to a pool with its
// data buffer: the copy kept for redeliveries costs no allocation in the
// steady state.
type delivery struct {
	topic   string
	attempt int
	orig    event.Event
	origCtx event.EventContextV1
	buf     []byte // holds orig's data
}

var deliveries = sync.Pool{New: func() any { return new(delivery) }}

// maxPooledData bounds the data buffer a pooled delivery keeps.
const maxPooledData = 64 << 10

// newDelivery copies e, published to name, for q: nothing of it is shared
// with the publisher.
func newDelivery(q *queue, name string, e event.Event) *delivery {
	d := deliveries.Get().(*delivery)
	d.topic, d.attempt, d.orig = name, 1, e
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok { // not 1.0: package transport validated the event, so this is not reached
		d.orig = e.Clone()
		return d
	}
	d.origCtx = *ec
	d.origCtx.Extensions = cloneExtensions(ec.Extensions)
	d.orig.Context = &d.origCtx
	d.orig.FieldErrors = nil
	if e.DataEncoded != nil {
		d.buf = append(d.buf[:0], e.DataEncoded...)
		d.orig.DataEncoded = d.buf
	}
	return d
}

// event returns a copy of the event as published.
func (d *delivery) event() event.Event {
	ev := d.orig
	ec, ok := d.orig.Context.(*event.EventContextV1)
	if !ok {
		return d.orig.Clone()
	}
	c := new(event.EventContextV1)
	*c = *ec
	c.Extensions = cloneExtensions(ec.Extensions)
	ev.Context = c
	if d.orig.DataEncoded != nil {
		ev.DataEncoded = append(make([]byte, 0, len(d.orig.DataEncoded)), d.orig.DataEncoded...)
	}
	return ev
}

// release returns d to the pool. Its fields are left as they are (the next
// newDelivery overwrites them; clearing them would cost write barriers on
// the hot path), but a large data buffer is dropped.
func (d *delivery) release() {
	if cap(d.buf) > maxPooledData {
		d.buf = nil
	}
	deliveries.Put(d)
}

func cloneExtensions(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if b, ok := v.([]byte); ok { // the one mutable extension type
			v = append([]byte(nil), b...)
		}
		out[k] = v
	}
	return out
}

// sub is a lone subscription: the only reader of its queue.
type sub struct {
	q     *queue
	taken []*delivery // ReceiveBatch's scratch
}

// ReceiveBatch implements driver.Subscription: it waits for the first
// delivery, then takes what else is queued, up to max.
func (s *sub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	var d *delivery
	select {
	case d = <-s.q.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	taken := append(s.taken[:0], d)
drain:
	for len(taken) < max {
		select {
		case d = <-s.q.ch:
			taken = append(taken, d)
		default:
			break drain
		}
	}
	s.taken = taken
	msgs := make([]driver.Message, len(taken))
	out := make([]*driver.Message, len(taken))
	for i, d := range taken {
		msgs[i] = driver.Message{Topic: d.topic, Event: d.event(), Attempt: d.attempt, ID: d}
		out[i] = &msgs[i]
		taken[i] = nil
	}
	return out, nil
}

// SendAcks implements driver.Subscription: nothing to tell anyone in
// memory; the deliveries are done.
func (s *sub) SendAcks(_ context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		id.(*delivery).release()
	}
	return nil
}

// SendNacks implements driver.Subscription: each event, as published, is
// queued again to the same subscription or group, with its attempt
// incremented, after the nack's delay.
func (s *sub) SendNacks(_ context.Context, nacks []driver.Nack) error {
	var errs []error
	for _, n := range nacks {
		d := n.ID.(*delivery)
		d.attempt++
		if err := s.q.requeue(d, n.Delay); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close implements driver.Subscription: the subscription leaves its queue;
// a lone subscription's buffered events are gone with it.
func (s *sub) Close() error {
	s.q.bus.leave(s.q)
	return nil
}

// member is a group member's subscription. It takes one message at a time,
// so that members compete for each message, and gives the messages it
// received but package transport did not hand over back to the group when
// it closes.
type member struct {
	*sub
	mu      sync.Mutex
	pending []*delivery // received, not yet taken by the application
}

// ReceiveBatch implements driver.Subscription with batches of one message.
func (m *member) ReceiveBatch(ctx context.Context, _ int) ([]*driver.Message, error) {
	msgs, err := m.sub.ReceiveBatch(ctx, 1)
	if len(msgs) == 1 {
		m.mu.Lock()
		m.pending = append(m.pending, msgs[0].ID.(*delivery))
		m.mu.Unlock()
	}
	return msgs, err
}

// Delivered implements driver.DeliveryObserver.
func (m *member) Delivered(id driver.AckID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, d := range m.pending {
		if d == id {
			m.pending = append(m.pending[:i], m.pending[i+1:]...)
			return
		}
	}
}

// Close implements driver.Subscription: the messages not taken go back to
// the group, for its other members.
func (m *member) Close() error {
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, d := range pending {
		_ = m.q.requeue(d, 0) // fails only when the bus is closing: the events are gone
	}
	return m.sub.Close()
}

var (
	_ driver.Publisher        = (*bus)(nil)
	_ driver.Subscriber       = (*bus)(nil)
	_ driver.Subscription     = (*sub)(nil)
	_ driver.Subscription     = (*member)(nil)
	_ driver.DeliveryObserver = (*member)(nil)
)
