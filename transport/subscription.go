package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

const (
	// maxAckBatch bounds the ids of one SendAcks call.
	maxAckBatch = 1000
	// ackQueue bounds the acks waiting for the ack goroutine; an Ack
	// blocks while it is full.
	ackQueue = 1024
	// Backoff of transient ReceiveBatch failures.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Subscription is an eventkit.Subscription on a driver.Subscription. One
// goroutine receives batches from the driver, another sends the acks in
// batches, unless the driver acks inline (driver.InlineAcker): an Ack then
// calls the driver directly, with no channel and no goroutine. When the driver does not observe deliveries, the receiving
// goroutine fills Messages, a channel buffered with one batch (so that the
// next receive overlaps with the delivery of the last batch). When it
// observes them (driver.DeliveryObserver), Messages is unbuffered and a
// third goroutine hands the messages over one at a time, so that Delivered
// is called right after each one is taken.
type Subscription struct {
	owner   *Subscriber
	ds      driver.Subscription
	obs     driver.DeliveryObserver // nil unless ds implements it
	inline  driver.InlineAcker      // nil unless ds implements it
	pattern string
	max     int

	out      chan *eventkit.Message
	batches  chan []inflight // receive -> handOver; nil when obs is nil
	ctx      context.Context // cancelled when the stop begins
	cancel   context.CancelFunc
	recvDone chan struct{}
	handDone chan struct{}

	// settleCtx bounds SendAcks and SendNacks; it is cancelled when the
	// stop's context ends or the stop is over.
	settleCtx    context.Context
	settleCancel context.CancelFunc
	ackMu        sync.RWMutex // ack and nack hold it shared; the stop takes it to close acks
	ackClosed    bool
	acks         chan driver.AckID // nil when inline is set
	ackDone      chan struct{}     // closed at once when inline is set
	nacking      sync.WaitGroup
	flushing     atomic.Bool
	flushErrs    []error // owned by ackLoop until ackDone

	mu      sync.Mutex
	err     error
	stopCtx func() bool
	stop    stopper
}

// inflight settles one delivered message.
type inflight struct {
	s  *Subscription
	id driver.AckID
	m  *eventkit.Message
}

func (f *inflight) Ack(*eventkit.Message) error { return f.s.ack(f.id) }

func (f *inflight) Nack(_ *eventkit.Message, reason error, delay time.Duration) error {
	return f.s.nack(f.id, reason, delay)
}

func newSubscription(owner *Subscriber, ds driver.Subscription, pattern string, max int) *Subscription {
	s := &Subscription{
		owner:    owner,
		ds:       ds,
		pattern:  pattern,
		max:      max,
		recvDone: make(chan struct{}),
		handDone: make(chan struct{}),
		ackDone:  make(chan struct{}),
		stop:     newStopper(),
	}
	s.inline, _ = ds.(driver.InlineAcker)
	if s.inline != nil {
		close(s.ackDone)
	} else {
		s.acks = make(chan driver.AckID, ackQueue)
	}
	s.obs, _ = ds.(driver.DeliveryObserver)
	if s.obs != nil {
		s.out = make(chan *eventkit.Message)
		s.batches = make(chan []inflight)
	} else {
		// One batch waits in the channel while the next is received: as
		// with the hand-over goroutine, at most two batches are in flight
		// and not taken.
		s.out = make(chan *eventkit.Message, max)
		close(s.handDone)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.settleCtx, s.settleCancel = context.WithCancel(context.Background())
	return s
}

// start runs the goroutines and binds the subscription's life to ctx.
func (s *Subscription) start(ctx context.Context) {
	if s.obs != nil {
		go s.receive()
		go s.handOver()
	} else {
		go s.receiveDirect()
	}
	if s.inline == nil {
		go s.ackLoop()
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.mu.Lock()
	s.stopCtx = stop
	s.mu.Unlock()
}

// Messages returns the channel of delivered messages, closed when the
// subscription ends.
func (s *Subscription) Messages() <-chan *eventkit.Message { return s.out }

// Err returns why the subscription ended: nil after Close, Shutdown or the
// end of its context, the driver's permanent error otherwise.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Capabilities returns the capabilities of the subscription's transport.
func (s *Subscription) Capabilities() eventkit.Capabilities { return s.owner.caps }

func (s *Subscription) name() string { return s.owner.cfg.name }

// receive is the receive loop for a driver that observes deliveries: it
// hands whole batches to handOver, which feeds Messages.
func (s *Subscription) receive() {
	defer close(s.recvDone)
	defer close(s.batches)
	s.receiveLoop(func(batch []inflight) bool {
		select {
		case s.batches <- batch:
			return true
		case <-s.ctx.Done():
			return false // what was received stays in flight, for the broker
		}
	}, func() {})
}

// receiveDirect is receive for a driver that does not observe deliveries:
// it puts the messages into the buffered Messages channel itself. When the
// stop begins, the messages still buffered are taken back (they stay in
// flight, for the broker) before the channel is closed; when the driver
// fails, they are left for the application to take.
func (s *Subscription) receiveDirect() {
	defer close(s.recvDone)
	defer close(s.out)
	s.receiveLoop(func(batch []inflight) bool {
		for i := range batch {
			m := batch[i].m
			select {
			case s.out <- m:
				continue
			default:
			}
			select {
			case s.out <- m:
			case <-s.ctx.Done():
				return false
			}
		}
		return true
	}, s.drain)
}

// receiveLoop receives batches from the driver, retrying transient
// failures with a capped exponential backoff, and passes each batch to
// deliver until deliver returns false or the subscription's context ends;
// it then calls stopped. A permanent failure ends the loop with the
// subscription's error set, without calling stopped.
func (s *Subscription) receiveLoop(deliver func([]inflight) bool, stopped func()) {
	backoff := minBackoff
	for {
		msgs, err := s.ds.ReceiveBatch(s.ctx, s.max)
		if s.ctx.Err() != nil {
			stopped() // what was received stays in flight, for the broker
			return
		}
		if err != nil {
			if !driver.IsRetryable(err) {
				s.mu.Lock()
				s.err = fmt.Errorf("%s: subscription %q: %w", s.name(), s.pattern, err)
				s.mu.Unlock()
				return
			}
			s.owner.cfg.logger.Warn(s.name()+": receive failed; retrying", "pattern", s.pattern, "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				stopped()
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if len(msgs) == 0 {
			continue
		}
		batch := make([]inflight, len(msgs))
		for i, dm := range msgs {
			f := &batch[i]
			f.s, f.id = s, dm.ID
			f.m = eventkit.NewMessage(dm.Topic, dm.Event, max(dm.Attempt, 1), f, dm.Raw)
			f.m.Position = dm.Position
		}
		if !deliver(batch) {
			stopped()
			return
		}
	}
}

// drain takes back the messages buffered in Messages and not taken.
func (s *Subscription) drain() {
	for {
		select {
		case <-s.out:
		default:
			return
		}
	}
}

func (s *Subscription) handOver() {
	defer close(s.handDone)
	defer close(s.out)
	for batch := range s.batches {
		for i := range batch {
			select {
			case s.out <- batch[i].m:
			case <-s.ctx.Done():
				return
			}
			if s.obs != nil {
				s.obs.Delivered(batch[i].id)
			}
		}
	}
}

// ack settles id inline (driver.InlineAcker) or queues it for ackLoop.
func (s *Subscription) ack(id driver.AckID) error {
	s.ackMu.RLock()
	defer s.ackMu.RUnlock()
	if s.ackClosed {
		return eventkit.ErrClosed
	}
	if s.inline == nil {
		s.acks <- id
		return nil
	}
	if err := s.inline.AckInline(id); err != nil {
		return fmt.Errorf("%s: subscription %q: ack: %w", s.name(), s.pattern, err)
	}
	return nil
}

// ackLoop sends the acks in batches of what has queued up.
func (s *Subscription) ackLoop() {
	defer close(s.ackDone)
	buf := make([]driver.AckID, 0, 64)
	for id := range s.acks {
		buf = append(buf[:0], id)
	drain:
		for len(buf) < maxAckBatch {
			select {
			case id, ok := <-s.acks:
				if !ok {
					break drain
				}
				buf = append(buf, id)
			default:
				break drain
			}
		}
		if err := s.ds.SendAcks(s.settleCtx, buf); err != nil {
			err = fmt.Errorf("%s: subscription %q: ack %d messages: %w", s.name(), s.pattern, len(buf), err)
			if s.flushing.Load() {
				s.flushErrs = append(s.flushErrs, err)
			} else {
				s.owner.cfg.logger.Warn(s.name()+": ack failed; the messages will be delivered again", "err", err)
			}
		}
	}
}

func (s *Subscription) nack(id driver.AckID, reason error, delay time.Duration) error {
	caps := s.owner.caps
	if !caps.Has(eventkit.CapNack) {
		return &eventkit.CapabilityError{Transport: s.name(), Op: "nack", Missing: eventkit.CapNack}
	}
	delay = max(delay, 0)
	if delay > 0 && !caps.Has(eventkit.CapNackDelay) {
		return &eventkit.CapabilityError{Transport: s.name(), Op: "nack with a delay of " + delay.String(), Missing: eventkit.CapNackDelay}
	}
	s.ackMu.RLock()
	if s.ackClosed {
		s.ackMu.RUnlock()
		return eventkit.ErrClosed
	}
	s.nacking.Add(1)
	s.ackMu.RUnlock()
	defer s.nacking.Done()
	if err := s.ds.SendNacks(s.settleCtx, []driver.Nack{{ID: id, Delay: delay, Reason: reason}}); err != nil {
		return fmt.Errorf("%s: subscription %q: nack: %w", s.name(), s.pattern, err)
	}
	return nil
}

// Shutdown ends the subscription within ctx: no message is handed over
// any more, the acks already made are sent, then the driver's subscription
// is shut down. Messages delivered and not settled are the broker's to
// deliver again. It returns every error met; after the first call, it
// waits for the stop (within ctx) and returns nil.
func (s *Subscription) Shutdown(ctx context.Context) error {
	return s.stop.stop(ctx, s.name(), func(ctx context.Context) error {
		defer s.owner.forget(s)
		defer s.settleCancel()
		s.mu.Lock()
		if s.stopCtx != nil {
			s.stopCtx()
		}
		s.mu.Unlock()
		s.cancel()
		<-s.recvDone
		<-s.handDone
		stopSettle := context.AfterFunc(ctx, s.settleCancel)
		defer stopSettle()
		s.flushing.Store(true)
		s.ackMu.Lock()
		s.ackClosed = true
		if s.acks != nil {
			close(s.acks)
		}
		s.ackMu.Unlock()
		<-s.ackDone
		s.nacking.Wait()
		errs := s.flushErrs
		if err := closeDriver(ctx, s.ds); err != nil {
			errs = append(errs, fmt.Errorf("%s: close subscription %q: %w", s.name(), s.pattern, err))
		}
		return errors.Join(errs...)
	})
}

// Close is Shutdown bounded by the close timeout (WithCloseTimeout).
func (s *Subscription) Close() error {
	return s.owner.cfg.bounded(s.Shutdown)
}

var _ eventkit.Subscription = (*Subscription)(nil)
