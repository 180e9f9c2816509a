package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
)

// Subscriber is an eventkit.Subscriber on a driver.Subscriber. It is safe
// for concurrent use and may hold many subscriptions.
type Subscriber struct {
	d    driver.Subscriber
	cfg  config
	caps eventkit.Capabilities

	gate // Subscribes between their closed check and their registration; its mu guards live
	live map[*Subscription]struct{}
	stop stopper
}

// NewSubscriber returns a subscriber on d, which it owns: Close closes d.
func NewSubscriber(d driver.Subscriber, opts ...Option) (*Subscriber, error) {
	cfg, err := driverConfig("transport.NewSubscriber", d, opts)
	if err != nil {
		return nil, err
	}
	return &Subscriber{d: d, cfg: cfg, caps: d.Capabilities(), live: make(map[*Subscription]struct{}), stop: newStopper()}, nil
}

// Capabilities returns the driver's subscription capabilities.
func (s *Subscriber) Capabilities() eventkit.Capabilities { return s.caps }

// Subscribe validates pattern and the options, refuses what the driver's
// capabilities do not cover (a *eventkit.CapabilityError), opens the
// driver's subscription within ctx and starts delivering. The subscription
// ends when ctx ends, when it is closed, or when the subscriber is closed.
// The returned value is a *Subscription.
func (s *Subscriber) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("%s: subscribe: %w", s.cfg.name, err)
	}
	dc, err := s.cfg.subscribeConfig(pattern, topic.IsPattern(pattern), s.caps, opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, eventkit.ErrClosed
	}
	defer s.inflight.Done()
	ds, err := s.d.OpenSubscription(ctx, pattern, dc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.Join(eventkit.ErrClosed, ds.Close())
	}
	sub := newSubscription(s, ds, pattern, dc.MaxBatch)
	sub.start(ctx)
	s.live[sub] = struct{}{}
	s.mu.Unlock()
	return sub, nil
}

// Seek implements eventkit.Seeker on a driver that is a driver.Seeker:
// it checks pattern, group and the starting point to (exactly one of
// eventkit.FromStart, StartAt and StartAtPosition, with the capability it
// needs), then has the driver move the group within ctx. A driver that is
// no driver.Seeker refuses it with a *eventkit.CapabilityError.
func (s *Subscriber) Seek(ctx context.Context, pattern, group string, to eventkit.SubscribeOption) error {
	if err := topic.ValidatePattern(pattern); err != nil {
		return fmt.Errorf("%s: seek: %w", s.cfg.name, err)
	}
	dc, err := s.cfg.seekConfig(pattern, group, s.caps, to)
	if err != nil {
		return err
	}
	sk, ok := s.d.(driver.Seeker)
	if !ok {
		if ca, isCA := s.d.(closeAfter); isCA {
			sk, ok = ca.Subscriber.(driver.Seeker)
		}
	}
	if !ok {
		return &eventkit.CapabilityError{Transport: s.cfg.name, Op: "seek group " + strconv.Quote(group), Missing: dc.need}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.enter() {
		return eventkit.ErrClosed
	}
	defer s.inflight.Done()
	return sk.Seek(ctx, pattern, dc.Config)
}

func (s *Subscriber) forget(sub *Subscription) {
	s.mu.Lock()
	delete(s.live, sub)
	s.mu.Unlock()
}

// Shutdown refuses new subscriptions, shuts every live one down
// concurrently (see Subscription.Shutdown), then shuts the driver down, all
// within ctx. It returns every error met.
func (s *Subscriber) Shutdown(ctx context.Context) error {
	s.close()
	return s.stop.stop(ctx, s.cfg.name, func(ctx context.Context) error {
		s.inflight.Wait()
		s.mu.Lock()
		live := make([]*Subscription, 0, len(s.live))
		for sub := range s.live {
			live = append(live, sub)
		}
		s.mu.Unlock()
		errs := make([]error, len(live)+1)
		var wg sync.WaitGroup
		for i, sub := range live {
			wg.Go(func() { errs[i] = sub.Shutdown(ctx) })
		}
		wg.Wait()
		// A subscription whose stop outlived ctx is still stopping: the
		// driver is closed after it.
		for _, sub := range live {
			<-sub.stop.done
		}
		if err := closeDriver(ctx, s.d); err != nil {
			errs[len(live)] = fmt.Errorf("%s: close subscriber: %w", s.cfg.name, err)
		}
		return errors.Join(errs...)
	})
}

// Close is Shutdown bounded by the close timeout (WithCloseTimeout).
func (s *Subscriber) Close() error {
	return s.cfg.bounded(s.Shutdown)
}

var _ eventkit.Subscriber = (*Subscriber)(nil)
