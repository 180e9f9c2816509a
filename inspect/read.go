package inspect

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
)

// Source reads stored events: FromSubscriber on a transport, or the
// server's own store.
type Source interface {
	// Read calls fn with each stored event that matches q, in store
	// order, until the end of q's range, q.Limit, ctx's end or fn's
	// error (returned as is).
	Read(ctx context.Context, q Query, fn func(Item) error) (Result, error)
}

// FromSubscriber returns the Source that reads through sub (see Read).
func FromSubscriber(sub eventkit.Subscriber) Source { return subSource{sub} }

type subSource struct{ sub eventkit.Subscriber }

func (s subSource) Read(ctx context.Context, q Query, fn func(Item) error) (Result, error) {
	return Read(ctx, s.sub, q, fn)
}

// Read calls fn with each event stored on sub that matches q, in the
// order the transport delivers them, and returns where it stopped (see
// the package documentation for how it knows it has caught up). It needs
// eventkit.CapStartAtTime for q.Since, q.Until and the current end, and
// eventkit.CapStartAtPosition for q.After; a subscriber without them
// refuses with a *eventkit.CapabilityError. fn's error ends the read and
// is returned as is.
func Read(ctx context.Context, sub eventkit.Subscriber, q Query, fn func(Item) error) (Result, error) {
	m, err := q.Compile()
	if err != nil {
		return Result{}, err
	}
	pattern := q.Topic
	if pattern == "" {
		pattern = ">"
	}
	idle := q.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end := q.Until
	if end.IsZero() {
		end = time.Now()
	}
	probe, err := startProbe(ctx, sub, pattern, q.Group, end)
	if err != nil {
		return Result{}, err
	}
	defer probe.stop()
	if !q.Until.IsZero() {
		// The first event after the end must be known before the
		// reading meets it; a quiet topic has none, then idle ends.
		probe.waitFirst(ctx, idle)
	}
	opts := groupOpt(q.Group)
	switch {
	case q.After != "":
		opts = append(opts, eventkit.StartAtPosition(q.After))
	case !q.Since.IsZero():
		opts = append(opts, eventkit.StartAt(q.Since))
	default:
		opts = append(opts, eventkit.FromStart())
	}
	s, err := sub.Subscribe(ctx, pattern, opts...)
	if err != nil {
		return Result{}, fmt.Errorf("inspect: subscribe %s: %w", pattern, err)
	}
	defer s.Close()
	r := reader{q: q, m: m, probe: probe, fn: fn}
	return r.run(ctx, s, idle)
}

func groupOpt(g string) []eventkit.SubscribeOption {
	if g == "" {
		return nil
	}
	return []eventkit.SubscribeOption{eventkit.WithGroup(g)}
}

type reader struct {
	q     Query
	m     *Matcher
	probe *probe
	fn    func(Item) error
	res   Result
	n     int
}

// run takes the subscription's messages until the end.
func (r *reader) run(ctx context.Context, s eventkit.Subscription, idle time.Duration) (Result, error) {
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case msg, ok := <-s.Messages():
			if !ok {
				if err := s.Err(); err != nil {
					return r.res, fmt.Errorf("inspect: %w", err)
				}
				return r.res, ctx.Err()
			}
			done, err := r.take(msg)
			_ = msg.Ack()
			if done || err != nil {
				return r.res, err
			}
			t.Reset(idle)
		case <-t.C:
			return r.res, nil
		case <-ctx.Done():
			return r.res, ctx.Err()
		}
	}
}

// take handles one message: done when the read ends at it.
func (r *reader) take(msg *eventkit.Message) (done bool, err error) {
	if msg.Position != "" && msg.Position == r.q.After {
		return false, nil // StartAtPosition starts at it; After is after it
	}
	if msg.Position != "" && r.probe.isAfterEnd(msg.Position) {
		return true, nil
	}
	if r.q.Limit > 0 && r.n == r.q.Limit {
		r.res.More = true
		return true, nil
	}
	r.res.Next = msg.Position
	if !r.m.Match(msg.Event) {
		return false, nil
	}
	r.n++
	if err := r.fn(Item{Position: msg.Position, Topic: msg.Topic, Event: msg.Event}); err != nil {
		return true, err
	}
	return false, nil
}

// probe learns the positions of the events stored at or after the end.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}
	first  chan struct{}
	mu     sync.Mutex
	seen   bool
	after  map[string]struct{}
}

func startProbe(ctx context.Context, sub eventkit.Subscriber, pattern, group string, end time.Time) (*probe, error) {
	opts := []eventkit.SubscribeOption{eventkit.StartAt(end)}
	if group != "" {
		// A group of its own: members of one group share the events.
		opts = append(opts, eventkit.WithGroup(group+"-end"))
	}
	pctx, cancel := context.WithCancel(ctx)
	s, err := sub.Subscribe(pctx, pattern, opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("inspect: subscribe %s at the end: %w", pattern, err)
	}
	p := &probe{cancel: cancel, done: make(chan struct{}), first: make(chan struct{}), after: map[string]struct{}{}}
	go func() {
		defer close(p.done)
		defer s.Close()
		for msg := range s.Messages() {
			_ = msg.Ack()
			p.mu.Lock()
			if !p.seen {
				p.seen = true
				close(p.first)
			}
			if len(p.after) < maxEndPositions && msg.Position != "" {
				p.after[msg.Position] = struct{}{}
			}
			p.mu.Unlock()
		}
	}()
	return p, nil
}

func (p *probe) isAfterEnd(pos string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.after[pos]
	return ok
}

// waitFirst waits for the first event after the end, at most d.
func (p *probe) waitFirst(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.first:
	case <-t.C:
	case <-ctx.Done():
	case <-p.done:
	}
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
}
