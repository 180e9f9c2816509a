package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// ErrFull is the error of a Feed's Publish that found no room within its
// wait (FeedWait): the pipeline behind it is full. It is marked
// retryable after one second (eventkit.RetryAfter); an HTTP ingress
// answers it with 429 Too Many Requests.
var ErrFull = errors.New("pipeline: feed full: the pipeline holds as many events as it may")

// DefaultFeedCapacity is the default bound of a Feed.
const DefaultFeedCapacity = 256

// Feed is a source that producers push events into: a Publisher on one
// side, for the code that has events to give (an HTTP ingress, a CDC
// source, an outbox relay), and a Subscriber on the other, for the
// pipeline (Source.Subscriber). Its Publish returns only when the
// pipeline settled every event it was given: nil when each was acked (every
// event that descends from it was settled by a sink, or ended on purpose),
// an error when one failed in a stage (the first failure's reason), so
// that the producer's own retry takes over: a CDC source does not confirm
// the WAL position, an outbox relay does not mark the rows delivered, an
// HTTP client gets 503 and sends again. Nothing is lost; what a producer
// sends again may be seen twice.
//
// A Feed holds at most its capacity of events pushed and not yet settled
// (FeedCapacity); Publish waits for room, at most FeedWait, and fails with
// ErrFull after that. A Publish with more events than the capacity waits
// until the feed is empty, then goes through. The events are cloned: the
// producer's copies are never changed by the stages.
//
// A Feed delivers every event pushed into it, whatever the pattern given to
// Subscribe; it has one subscription at a time. Events pushed while no
// subscription is open wait for the next one, and so do those a closed
// subscription's consumer had not taken, in order. Close refuses further
// Publish calls and fails the events still waiting with
// eventkit.ErrClosed.
type Feed struct {
	capacity int
	wait     time.Duration // < 0: as long as the caller's ctx

	queue chan *eventkit.Message

	mu      sync.Mutex
	held    int
	waiting int                 // Publish calls waiting for room
	room    chan struct{}       // closed and replaced when room is made for a waiting call
	carry   []*eventkit.Message // taken from the queue by a subscription that closed, not by its consumer
	sub     *feedSub
	closed  bool
	closing chan struct{}
}

// FeedOption configures a Feed.
type FeedOption func(*Feed)

// FeedCapacity bounds the events pushed and not yet settled
// (DefaultFeedCapacity).
func FeedCapacity(n int) FeedOption { return func(f *Feed) { f.capacity = max(n, 1) } }

// FeedWait bounds the wait of Publish for room: after d it fails with
// ErrFull (0: at once). By default it waits as long as its context.
func FeedWait(d time.Duration) FeedOption { return func(f *Feed) { f.wait = max(d, 0) } }

// NewFeed returns an open Feed.
func NewFeed(opts ...FeedOption) *Feed {
	f := &Feed{capacity: DefaultFeedCapacity, wait: -1, room: make(chan struct{}), closing: make(chan struct{})}
	for _, o := range opts {
		o(f)
	}
	f.queue = make(chan *eventkit.Message, f.capacity)
	return f
}

// feedCall is one Publish call waiting for its events to be settled; it
// is the Acknowledger of their messages.
type feedCall struct {
	f    *Feed
	mu   sync.Mutex
	left int
	err  error
	done chan struct{}
}

func (c *feedCall) settle(err error) {
	c.mu.Lock()
	if err != nil && c.err == nil {
		c.err = err
	}
	c.left--
	last := c.left == 0
	c.mu.Unlock()
	c.f.release()
	if last {
		close(c.done)
	}
}

// Ack settles an event of the call as handled.
func (c *feedCall) Ack(*eventkit.Message) error { c.settle(nil); return nil }

// Nack settles an event of the call as failed: Publish returns reason.
func (c *feedCall) Nack(m *eventkit.Message, reason error, _ time.Duration) error {
	if reason == nil {
		reason = errors.New("nacked")
	}
	c.settle(fmt.Errorf("pipeline: event %q failed in the pipeline: %w", m.Event.ID(), reason))
	return nil
}

// Publish pushes events into the pipeline and waits until every one was
// settled (see Feed). topic is given to the stages as the events' topic.
// If ctx ends first, Publish returns ctx's error and the events go on
// through the pipeline.
func (f *Feed) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := f.acquire(ctx, len(events)); err != nil {
		return err
	}
	call := &feedCall{f: f, left: len(events), done: make(chan struct{})}
	for i, e := range events {
		m := eventkit.NewMessage(topic, CloneEvent(e), 1, call, nil)
		select {
		case f.queue <- m: // room: the common case, without a full select
			continue
		default:
		}
		select {
		case f.queue <- m:
		case <-f.closing:
			for range events[i:] {
				call.settle(eventkit.ErrClosed)
			}
		case <-ctx.Done():
			for range events[i:] {
				call.settle(ctx.Err())
			}
			return ctx.Err()
		}
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	case <-f.closing:
		// A message queued as Close drained the queue would wait for
		// ever: no subscription takes it any more.
		select {
		case <-call.done:
			return call.err
		default:
			return eventkit.ErrClosed
		}
	}
}

// acquire reserves room for n events.
func (f *Feed) acquire(ctx context.Context, n int) error {
	var timeout <-chan time.Time
	if f.wait >= 0 {
		t := time.NewTimer(f.wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return eventkit.ErrClosed
		}
		if f.held == 0 || f.held+n <= f.capacity {
			f.held += n
			f.mu.Unlock()
			return nil
		}
		room := f.room
		f.waiting++
		f.mu.Unlock()
		err := f.await(ctx, room, timeout)
		f.mu.Lock()
		f.waiting--
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// await waits for room to be closed, or for the end of the wait.
func (f *Feed) await(ctx context.Context, room chan struct{}, timeout <-chan time.Time) error {
	select {
	case <-room:
		return nil
	case <-timeout:
		return eventkit.RetryAfter(ErrFull, time.Second)
	case <-ctx.Done():
		return ctx.Err()
	case <-f.closing:
		return eventkit.ErrClosed
	}
}

func (f *Feed) release() {
	f.mu.Lock()
	f.held--
	if f.waiting > 0 {
		close(f.room)
		f.room = make(chan struct{})
	}
	f.mu.Unlock()
}

// Held returns the number of events pushed and not yet settled.
func (f *Feed) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// Subscribe opens the feed's subscription (one at a time); pattern and
// the options are not used: a feed delivers everything pushed into it.
func (f *Feed) Subscribe(ctx context.Context, _ string, _ ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, eventkit.ErrClosed
	}
	if f.sub != nil {
		return nil, errors.New("pipeline: a feed has one subscription at a time")
	}
	// out is buffered: the consumer finds the events waiting and can take
	// several at once (a pipeline source hands them on as one batch).
	s := &feedSub{f: f, out: make(chan *eventkit.Message, f.capacity), stop: make(chan struct{}), ended: make(chan struct{})}
	f.sub = s
	carry := f.carry
	f.carry = nil
	go s.forward(ctx, carry)
	return s, nil
}

// Close refuses further Publish calls, ends the subscription and fails
// the events that no subscription took (their Publish returns
// eventkit.ErrClosed).
func (f *Feed) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.closing)
	s := f.sub
	f.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
	f.mu.Lock()
	carry := f.carry
	f.carry = nil
	f.mu.Unlock()
	for _, m := range carry {
		_ = m.Nack(eventkit.ErrClosed)
	}
	for {
		select {
		case m := <-f.queue:
			_ = m.Nack(eventkit.ErrClosed)
		default:
			return nil
		}
	}
}

type feedSub struct {
	f        *Feed
	out      chan *eventkit.Message
	stop     chan struct{}
	stopOnce sync.Once
	ended    chan struct{}
}

// forward hands carry, then the feed's queue, to the subscription until
// it ends.
func (s *feedSub) forward(ctx context.Context, carry []*eventkit.Message) {
	defer close(s.ended)
	defer s.f.endSub(s)
	for i, m := range carry {
		if !s.hand(ctx, m) {
			s.f.keep(carry[i+1:]...)
			return
		}
	}
	for {
		var m *eventkit.Message
		select {
		case m = <-s.f.queue: // waiting already: the common case under load
		default:
			select {
			case m = <-s.f.queue:
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			}
		}
		if !s.hand(ctx, m) {
			return
		}
	}
}

// hand puts m in the subscription's buffer; false when the subscription
// ends first (m is kept for the next one).
func (s *feedSub) hand(ctx context.Context, m *eventkit.Message) bool {
	select {
	case s.out <- m:
		return true
	default:
	}
	select {
	case s.out <- m:
		return true
	case <-s.stop:
	case <-ctx.Done():
	}
	s.f.keep(m)
	return false
}

// keep sets messages aside, in order, for the next subscription.
func (f *Feed) keep(ms ...*eventkit.Message) {
	f.mu.Lock()
	f.carry = append(f.carry, ms...)
	f.mu.Unlock()
}

// endSub closes s's channel and keeps what its consumer did not take (in
// order, before those carried already) for the next subscription.
func (f *Feed) endSub(s *feedSub) {
	close(s.out)
	var left []*eventkit.Message
	for m := range s.out {
		left = append(left, m)
	}
	f.mu.Lock()
	f.carry = append(left, f.carry...)
	f.sub = nil
	f.mu.Unlock()
}

func (s *feedSub) Messages() <-chan *eventkit.Message { return s.out }

func (s *feedSub) Err() error { return nil }

func (s *feedSub) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.ended
	return nil
}
