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
			if err := q.push(ctx, newDelivery(name, events[i])); err != nil {
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
	if cfg.Buffer > 0 {
		size = cfg.Buffer
	}
	for _, o := range cfg.Options {
		switch o := o.(type) {
		case policyOption:
			if p := Policy(o); p != Block && p != DropOldest && p != Fail {
				return nil, eventkit.InvalidOption("memory.WithPolicy", "unknown policy "+p.String())
			}
			policy = Policy(o)
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

// Stopping implements driver.Stopper: see shut.
func (b *bus) Stopping(context.Context) { b.shut() }

// shut wakes every blocked publisher, which returns eventkit.ErrClosed, and
// refuses every later SendBatch: package transport calls it (Stopping)
// before it waits for the publishes in flight.
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

// leave drops one member of q, and q with its last member.
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

var (
	_ driver.Publisher        = (*bus)(nil)
	_ driver.Subscriber       = (*bus)(nil)
	_ driver.Stopper          = (*bus)(nil)
	_ driver.Subscription     = (*sub)(nil)
	_ driver.Subscription     = (*member)(nil)
	_ driver.DeliveryObserver = (*member)(nil)
	_ driver.InlineAcker      = (*sub)(nil)
)
