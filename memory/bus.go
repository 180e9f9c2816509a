// Package memory is eventkit's in-process transport: a bus of goroutines and
// channels that implements eventkit.Publisher and eventkit.Subscriber.
//
// Every subscription whose pattern matches a topic gets each event published
// to it; subscriptions that share a consumer group (eventkit.WithGroup)
// compete for the events of that group. Each subscription, or group, holds
// its events in a bounded buffer with a back-pressure policy: Block (the
// default) makes the publisher wait for room, DropOldest discards the oldest
// buffered event and counts it, Fail makes the publish return
// eventkit.ErrBufferFull. A nacked message is delivered again, with its
// attempt incremented, after the nack's delay.
//
// Each delivery gets its own event: the bus copies an event when it is
// published (so the publisher may change or reuse the event and its data
// buffer once Publish returns) and again for every message it hands out, a
// redelivery included, which carries the event as published. A handler may
// change its message's event (extensions, attributes, data, the data bytes
// in place) without another subscription, the publisher or a redelivery
// seeing it.
//
// The bus keeps nothing on disk and nothing for a subscription that has
// ended: events buffered for a subscription when it closes are gone, and an
// event published to a topic that nothing subscribes to is discarded. Use a
// broker transport (nats, kafka, ...) when events must outlive the process.
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
	"github.com/eventkit/eventkit/topic"
)

// Policy is what a subscription does when its buffer is full.
type Policy int

const (
	// Block makes the publisher wait until there is room (or its context
	// ends). This is the default: nothing is lost.
	Block Policy = iota
	// DropOldest discards the oldest buffered event to make room; the
	// discarded events are counted (Bus.Stats).
	DropOldest
	// Fail makes Publish return eventkit.ErrBufferFull for this subscription.
	Fail
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// policyOption is passed through eventkit.WithTransportOption.
type policyOption Policy

// WithPolicy sets the back-pressure policy of a subscription (for a group,
// the policy of the group's first member applies).
func WithPolicy(p Policy) eventkit.SubscribeOption {
	return eventkit.WithTransportOption(policyOption(p))
}

// DefaultBuffer is the buffer of a subscription that asks for none.
const DefaultBuffer = 1024

// Option configures a Bus.
type Option func(*Bus)

// WithDefaultBuffer sets the buffer size of subscriptions that do not set
// one with eventkit.WithBuffer.
func WithDefaultBuffer(n int) Option { return func(b *Bus) { b.defaultBuffer = n } }

// Bus is an in-process publisher and subscriber. The zero value is not
// usable; create one with New. A Bus is safe for concurrent use.
type Bus struct {
	defaultBuffer int

	mu     sync.Mutex // guards trie changes, groups, queues, closed
	trie   *topic.Trie[*queue]
	groups map[string]*queue
	queues map[*queue]struct{}
	closed atomic.Bool
	done   chan struct{}

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

// New returns an empty bus.
func New(opts ...Option) *Bus {
	b := &Bus{
		defaultBuffer: DefaultBuffer,
		trie:          topic.NewTrie[*queue](),
		groups:        make(map[string]*queue),
		queues:        make(map[*queue]struct{}),
		done:          make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.routes.Store(&routeCache{})
	return b
}

// Stats are counters of a bus.
type Stats struct {
	Published uint64 // deliveries enqueued (one per matching subscription or group)
	Dropped   uint64 // events discarded by DropOldest
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{Published: b.published.Load(), Dropped: b.dropped.Load()}
}

func (b *Bus) lookup(name string) []*queue {
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

// Publish delivers each event to every subscription (or group) whose pattern
// matches topic. With the Block policy it waits for room; it returns
// ctx's error if ctx ends first, and eventkit.ErrClosed once the bus is
// closed.
func (b *Bus) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("memory: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("memory: publish: %w", err)
	}
	if b.closed.Load() {
		return eventkit.ErrClosed
	}
	qs := b.lookup(name)
	for i := range events {
		for _, q := range qs {
			m := newDelivery(q, events[i]).message(name, 1)
			if err := q.push(ctx, m); err != nil {
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

// Subscribe starts a subscription to pattern. Subscriptions of one group
// must use the same pattern.
func (b *Bus) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("memory: subscribe: %w", err)
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	size := cfg.Buffer
	if size <= 0 {
		size = b.defaultBuffer
	}
	policy := Block
	for _, o := range cfg.Transport {
		if p, ok := o.(policyOption); ok {
			policy = Policy(p)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, eventkit.ErrClosed
	}
	var q *queue
	if cfg.Group != "" {
		q = b.groups[cfg.Group]
		if q != nil && q.pattern != pattern {
			b.mu.Unlock()
			return nil, fmt.Errorf("memory: subscribe: group %q already subscribes to %q, not %q", cfg.Group, q.pattern, pattern)
		}
	}
	if q == nil {
		q = newQueue(b, pattern, cfg.Group, size, policy)
		if err := b.trie.Insert(pattern, q); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		b.queues[q] = struct{}{}
		if cfg.Group != "" {
			b.groups[cfg.Group] = q
		}
		b.routes.Store(&routeCache{})
	}
	q.members++
	b.mu.Unlock()

	s := &subscription{q: q, done: make(chan struct{})}
	if cfg.Group == "" {
		s.out = q.ch // a lone subscription reads its queue directly
	} else {
		out := make(chan *eventkit.Message)
		s.out = out
		s.pumpDone = make(chan struct{})
		go s.pump(out)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.mu.Lock()
	s.stopCtx = stop
	s.mu.Unlock()
	return s, nil
}

// Close ends every subscription, wakes every blocked publisher (which
// returns eventkit.ErrClosed) and waits for pending redeliveries to stop.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	close(b.done)
	qs := make([]*queue, 0, len(b.queues))
	for q := range b.queues {
		qs = append(qs, q)
	}
	b.mu.Unlock()
	for _, q := range qs {
		b.removeQueue(q)
	}
	b.redeliver.Wait()
	return nil
}

func (b *Bus) removeQueue(q *queue) {
	b.mu.Lock()
	if _, ok := b.queues[q]; ok {
		delete(b.queues, q)
		b.trie.Remove(q.pattern, q)
		if q.group != "" && b.groups[q.group] == q {
			delete(b.groups, q.group)
		}
		b.routes.Store(&routeCache{})
	}
	b.mu.Unlock()
	q.close()
}

// leave drops one member of q, removing q with its last member.
func (b *Bus) leave(q *queue) {
	b.mu.Lock()
	q.members--
	last := q.members == 0
	b.mu.Unlock()
	if last {
		b.removeQueue(q)
	}
}

var errQueueGone = errors.New("subscription ended")

// queue is the buffer of one lone subscription or one group.
type queue struct {
	bus     *Bus
	pattern string
	group   string
	policy  Policy
	members int // guarded by bus.mu

	ch     chan *eventkit.Message
	done   chan struct{}
	mu     sync.RWMutex // senders hold it shared; close takes it exclusively
	closed bool
	once   sync.Once
}

func newQueue(b *Bus, pattern, group string, size int, p Policy) *queue {
	return &queue{bus: b, pattern: pattern, group: group, policy: p,
		ch: make(chan *eventkit.Message, size), done: make(chan struct{})}
}

func (q *queue) close() {
	q.once.Do(func() {
		close(q.done)
		q.mu.Lock()
		q.closed = true
		close(q.ch)
		q.mu.Unlock()
	})
}

func (q *queue) push(ctx context.Context, m *eventkit.Message) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return errQueueGone
	}
	select {
	case q.ch <- m:
		return nil
	default:
	}
	switch q.policy {
	case Fail:
		return eventkit.ErrBufferFull
	case DropOldest:
		for {
			select {
			case q.ch <- m:
				return nil
			default:
			}
			select {
			case <-q.ch:
				q.bus.dropped.Add(1)
			default:
			}
		}
	}
	select {
	case q.ch <- m:
		return nil
	case <-q.done:
		if q.bus.closed.Load() {
			return eventkit.ErrClosed
		}
		return errQueueGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// delivery is the event of one publish to one queue (a lone subscription or
// a group), and the Acknowledger of its messages. It keeps the event as
// published (orig), which nothing hands out, so that every message gets a
// copy of it: the handler of one delivery may change its event (extensions,
// attributes, data, even the data bytes in place) without the publisher,
// another subscription or a redelivery seeing it.
//
// Once a message of the delivery is acked nothing can ask for another, so
// the delivery goes back to a pool with its data buffer: the copy kept for
// redeliveries costs no allocation in the steady state. (A message keeps a
// pointer to its delivery as its Acknowledger, but a settled message never
// calls it again.)
type delivery struct {
	q       *queue
	orig    event.Event
	origCtx event.EventContextV1
	buf     []byte // holds orig's data
}

var deliveries = sync.Pool{New: func() any { return new(delivery) }}

// maxPooledData bounds the data buffer a pooled delivery keeps.
const maxPooledData = 64 << 10

// newDelivery copies e for q: nothing of it is shared with the publisher.
func newDelivery(q *queue, e event.Event) *delivery {
	d := deliveries.Get().(*delivery)
	d.q, d.orig = q, e
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok { // not 1.0: Publish validated the event, so this is not reached
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

// message returns a message of the delivery with its own copy of the event.
func (d *delivery) message(topic string, attempt int) *eventkit.Message {
	ev := d.orig
	if ec, ok := d.orig.Context.(*event.EventContextV1); ok {
		c := new(event.EventContextV1)
		*c = *ec
		c.Extensions = cloneExtensions(ec.Extensions)
		ev.Context = c
		if d.orig.DataEncoded != nil {
			ev.DataEncoded = append(make([]byte, 0, len(d.orig.DataEncoded)), d.orig.DataEncoded...)
		}
	} else {
		ev = d.orig.Clone()
	}
	return eventkit.NewMessage(topic, ev, attempt, d, nil)
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

// Ack implements eventkit.Acknowledger: nothing to tell anyone in memory;
// the delivery is done.
func (d *delivery) Ack(*eventkit.Message) error {
	d.release()
	return nil
}

// Nack implements eventkit.Acknowledger: the event, as published, is
// delivered again to the same subscription or group, with the attempt
// incremented, after delay.
func (d *delivery) Nack(m *eventkit.Message, _ error, delay time.Duration) error {
	return d.q.requeue(d.message(m.Topic, m.Attempt+1), delay)
}

func (q *queue) requeue(m *eventkit.Message, delay time.Duration) error {
	select {
	case <-q.done:
		return eventkit.ErrClosed
	default:
	}
	if delay <= 0 {
		q.mu.RLock()
		if !q.closed {
			select {
			case q.ch <- m:
				q.mu.RUnlock()
				return nil
			default:
			}
		}
		q.mu.RUnlock()
	}
	b := q.bus
	// Add under b.mu, where Close sets closed before it waits: an Add never
	// races with Close's Wait.
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
		q.mu.RLock()
		defer q.mu.RUnlock()
		if q.closed {
			return
		}
		select {
		case q.ch <- m:
		case <-q.done:
		}
	}()
	return nil
}

// subscription is one member of a queue.
type subscription struct {
	q        *queue
	out      <-chan *eventkit.Message
	done     chan struct{}
	pumpDone chan struct{}
	once     sync.Once
	mu       sync.Mutex
	stopCtx  func() bool // guarded by mu
}

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

func (s *subscription) Err() error { return nil }

func (s *subscription) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		stop := s.stopCtx
		s.mu.Unlock()
		if stop != nil {
			stop()
		}
		close(s.done)
		if s.pumpDone != nil {
			<-s.pumpDone
		}
		s.q.bus.leave(s.q)
	})
	return nil
}

// pump hands the group's messages to this member, one at a time, so that
// members compete for them.
func (s *subscription) pump(out chan<- *eventkit.Message) {
	defer close(s.pumpDone)
	defer close(out)
	for {
		select {
		case m, ok := <-s.q.ch:
			if !ok {
				return
			}
			select {
			case out <- m:
			case <-s.done:
				_ = s.q.requeue(m, 0) // not delivered: give it to another member
				return
			}
		case <-s.done:
			return
		}
	}
}

var (
	_ eventkit.Publisher  = (*Bus)(nil)
	_ eventkit.Subscriber = (*Bus)(nil)
)
