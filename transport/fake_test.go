package transport_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
)

// fakeDriver is an in-process driver.Publisher and driver.Subscriber: each
// subscription (or group) has a queue; nacks come back after their delay.
// It records what the transport package calls, and checks the driver contract.
type fakeDriver struct {
	caps eventkit.Capabilities

	mu     sync.Mutex
	subs   map[*fakeSub]struct{}
	groups map[string]*fakeQueue
	nextID int64
	last   *fakeSub      // the last subscription opened
	cfg    driver.Config // the last subscription's configuration

	sendErr    error         // returned by SendBatch
	sendBlock  chan struct{} // SendBatch waits for it when set
	openErr    error         // returned by OpenSubscription
	closeErr   error         // returned by Close
	closeBlock chan struct{}

	// unobserved hides fakeSub's Delivered: the transport package then
	// takes its path for drivers without driver.DeliveryObserver.
	unobserved bool
	// inline makes the subscriptions driver.InlineAckers, whose
	// AckInline returns ackErr.
	inline bool
	ackErr error

	sending    atomic.Int32
	closeCalls atomic.Int32
	violations atomic.Int32 // calls the contract forbids
	sent       atomic.Int32 // SendBatch calls
}

func newFake(caps eventkit.Capabilities) *fakeDriver {
	return &fakeDriver{caps: caps, subs: map[*fakeSub]struct{}{}, groups: map[string]*fakeQueue{}}
}

const allCaps = eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay | eventkit.CapAttemptCount | eventkit.CapBatchPublish

func (d *fakeDriver) Capabilities() eventkit.Capabilities { return d.caps }

func (d *fakeDriver) SendBatch(ctx context.Context, name string, events []event.Event) error {
	d.sending.Add(1)
	defer d.sending.Add(-1)
	d.sent.Add(1)
	if d.closeCalls.Load() > 0 || len(events) == 0 || topic.ValidateName(name) != nil || eventkit.ValidateEvents(events) != nil {
		d.violations.Add(1)
	}
	if d.sendBlock != nil {
		<-d.sendBlock
	}
	if d.sendErr != nil {
		return d.sendErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		if s.group == "" && topic.Match(s.pattern, name) {
			s.q.push(d.items(name, events)...)
		}
	}
	for _, q := range d.groups {
		if topic.Match(q.pattern, name) {
			q.push(d.items(name, events)...)
		}
	}
	return nil
}

func (d *fakeDriver) items(name string, events []event.Event) []*fakeItem {
	out := make([]*fakeItem, len(events))
	for i := range events {
		d.nextID++
		out[i] = &fakeItem{id: d.nextID, topic: name, ev: events[i].Clone(), attempt: 1}
	}
	return out
}

func (d *fakeDriver) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if d.closeCalls.Load() > 0 || cfg.MaxBatch <= 0 || (topic.IsPattern(pattern) && !d.caps.Has(eventkit.CapWildcards)) {
		d.violations.Add(1)
	}
	if d.openErr != nil {
		return nil, d.openErr
	}
	for _, o := range cfg.Options {
		if _, ok := o.(eventkit.Required); ok {
			d.violations.Add(1) // the transport package handles it
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &fakeSub{d: d, pattern: pattern, group: cfg.Group, recvErrs: make(chan error, 10)}
	if cfg.Group != "" {
		q := d.groups[cfg.Group]
		if q == nil {
			q = newQueue(pattern)
			d.groups[cfg.Group] = q
		}
		q.members++
		s.q = q
	} else {
		s.q = newQueue(pattern)
	}
	d.subs[s] = struct{}{}
	d.last = s
	d.cfg = cfg
	switch {
	case d.inline:
		return inlineSub{s}, nil
	case d.unobserved:
		return plainSub{s}, nil
	}
	return s, nil
}

// inlineSub is a fakeSub that is a driver.InlineAcker: package transport
// must not call its SendAcks.
type inlineSub struct{ *fakeSub }

func (s inlineSub) AckInline(id driver.AckID) error {
	if err := s.fakeSub.SendAcks(context.Background(), []driver.AckID{id}); err != nil {
		return err
	}
	return s.d.ackErr
}

func (s inlineSub) SendAcks(context.Context, []driver.AckID) error {
	s.d.violations.Add(1)
	return nil
}

// plainSub is a fakeSub that is not a driver.DeliveryObserver.
type plainSub struct{ s *fakeSub }

func (p plainSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	return p.s.ReceiveBatch(ctx, max)
}
func (p plainSub) SendAcks(ctx context.Context, ids []driver.AckID) error {
	return p.s.SendAcks(ctx, ids)
}
func (p plainSub) SendNacks(ctx context.Context, nacks []driver.Nack) error {
	return p.s.SendNacks(ctx, nacks)
}
func (p plainSub) Close() error { return p.s.Close() }

func (d *fakeDriver) Close() error {
	if d.closeCalls.Add(1) > 1 || d.sending.Load() > 0 {
		d.violations.Add(1)
	}
	if d.closeBlock != nil {
		<-d.closeBlock
	}
	return d.closeErr
}

func (d *fakeDriver) live() []*fakeSub {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*fakeSub
	for s := range d.subs {
		out = append(out, s)
	}
	return out
}

type fakeItem struct {
	id      int64
	topic   string
	ev      event.Event
	attempt int
}

type fakeQueue struct {
	pattern string
	members int // guarded by the driver's mu

	mu      sync.Mutex
	items   []*fakeItem
	pending map[int64]*fakeItem
	wake    chan struct{}
}

func newQueue(pattern string) *fakeQueue {
	return &fakeQueue{pattern: pattern, pending: map[int64]*fakeItem{}, wake: make(chan struct{})}
}

func (q *fakeQueue) push(items ...*fakeItem) {
	q.mu.Lock()
	q.items = append(q.items, items...)
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}

func (q *fakeQueue) pop(ctx context.Context, max int) ([]*fakeItem, error) {
	for {
		q.mu.Lock()
		if n := min(max, len(q.items)); n > 0 {
			out := append([]*fakeItem(nil), q.items[:n]...)
			q.items = q.items[n:]
			for _, it := range out {
				q.pending[it.id] = it
			}
			q.mu.Unlock()
			return out, nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

type fakeSub struct {
	d       *fakeDriver
	pattern string
	group   string
	q       *fakeQueue

	recvErrs  chan error // returned by ReceiveBatch before it waits
	receiving atomic.Int32
	closed    atomic.Bool
	closeErr  error

	mu        sync.Mutex
	acked     []driver.AckID
	nacked    []driver.Nack
	delivered []driver.AckID
}

func (s *fakeSub) check() {
	if s.closed.Load() {
		s.d.violations.Add(1)
	}
}

func (s *fakeSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.check()
	if s.receiving.Add(1) > 1 {
		s.d.violations.Add(1)
	}
	defer s.receiving.Add(-1)
	select {
	case err := <-s.recvErrs:
		return nil, err
	default:
	}
	items, err := s.q.pop(ctx, max)
	if err != nil {
		return nil, err
	}
	out := make([]*driver.Message, len(items))
	for i, it := range items {
		out[i] = &driver.Message{Topic: it.topic, Event: it.ev.Clone(), Attempt: it.attempt, ID: it.id, Raw: it}
	}
	return out, nil
}

func (s *fakeSub) SendAcks(ctx context.Context, ids []driver.AckID) error {
	s.check()
	s.mu.Lock()
	s.acked = append(s.acked, ids...)
	s.mu.Unlock()
	s.q.mu.Lock()
	for _, id := range ids {
		delete(s.q.pending, id.(int64))
	}
	s.q.mu.Unlock()
	return nil
}

func (s *fakeSub) SendNacks(ctx context.Context, nacks []driver.Nack) error {
	s.check()
	if !s.d.caps.Has(eventkit.CapNack) {
		s.d.violations.Add(1)
	}
	s.mu.Lock()
	s.nacked = append(s.nacked, nacks...)
	s.mu.Unlock()
	for _, n := range nacks {
		if n.Delay > 0 && !s.d.caps.Has(eventkit.CapNackDelay) {
			s.d.violations.Add(1)
		}
		s.q.mu.Lock()
		it := s.q.pending[n.ID.(int64)]
		delete(s.q.pending, n.ID.(int64))
		s.q.mu.Unlock()
		if it == nil {
			s.d.violations.Add(1)
			continue
		}
		it.attempt++
		if n.Delay > 0 {
			time.AfterFunc(n.Delay, func() { s.q.push(it) })
		} else {
			s.q.push(it)
		}
	}
	return nil
}

func (s *fakeSub) Delivered(id driver.AckID) {
	s.check()
	s.mu.Lock()
	s.delivered = append(s.delivered, id)
	s.mu.Unlock()
}

func (s *fakeSub) Close() error {
	if s.closed.Swap(true) || s.receiving.Load() > 0 {
		s.d.violations.Add(1)
	}
	s.d.mu.Lock()
	delete(s.d.subs, s)
	if s.group != "" {
		if s.q.members--; s.q.members == 0 {
			delete(s.d.groups, s.group)
		}
	}
	s.d.mu.Unlock()
	return s.closeErr
}

func (s *fakeSub) counts() (acked, nacked, delivered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked), len(s.nacked), len(s.delivered)
}

var errBoom = errors.New("boom")
