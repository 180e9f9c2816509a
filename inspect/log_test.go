package inspect_test

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
)

// storeLog is a persistent transport in memory, for the tests: every
// event stored with a position (1, 2, ...) and a store time the test
// chooses, subscriptions starting at the oldest event, a time or a
// position, as eventkit's seek API says.
type storeLog struct {
	mu     sync.Mutex
	recs   []rec
	grow   chan struct{} // closed and replaced at each append
	at     time.Time     // store time of the next events (an hour ago at first)
	closed bool
}

type rec struct {
	at    time.Time
	topic string
	ev    event.Event
}

func newStoreLog() *storeLog {
	return &storeLog{grow: make(chan struct{}), at: time.Now().Add(-time.Hour)}
}

// setTime sets the store time of the next events.
func (l *storeLog) setTime(t time.Time) {
	l.mu.Lock()
	l.at = t
	l.mu.Unlock()
}

func (l *storeLog) Capabilities() eventkit.Capabilities {
	return eventkit.CapPersistent | eventkit.CapFromStart | eventkit.CapStartAtTime | eventkit.CapStartAtPosition | eventkit.CapWildcards
}

func (l *storeLog) Publish(_ context.Context, tp string, evs ...event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.recs = append(l.recs, rec{at: l.at, topic: tp, ev: e.Clone()})
	}
	close(l.grow)
	l.grow = make(chan struct{})
	return nil
}

func (l *storeLog) Close() error { return nil }

func (l *storeLog) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	cfg := eventkit.NewSubscribeConfig(opts...)
	l.mu.Lock()
	next := len(l.recs)
	switch {
	case cfg.FromStart:
		next = 0
	case !cfg.StartTime.IsZero():
		next = len(l.recs)
		for i, r := range l.recs {
			if !r.at.Before(cfg.StartTime) {
				next = i
				break
			}
		}
	case cfg.StartPosition != "":
		p, err := strconv.Atoi(cfg.StartPosition)
		if err != nil || p < 1 {
			l.mu.Unlock()
			return nil, eventkit.InvalidOption("StartAtPosition", "not a position: "+cfg.StartPosition)
		}
		next = p - 1
	}
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	s := &logSub{cancel: cancel, msgs: make(chan *eventkit.Message), done: make(chan struct{})}
	go s.run(ctx, l, pattern, next)
	return s, nil
}

type logSub struct {
	cancel context.CancelFunc
	msgs   chan *eventkit.Message
	done   chan struct{}
}

func (s *logSub) run(ctx context.Context, l *storeLog, pattern string, next int) {
	defer close(s.done)
	defer close(s.msgs)
	for {
		l.mu.Lock()
		recs, grow := l.recs, l.grow
		l.mu.Unlock()
		for ; next < len(recs); next++ {
			r := recs[next]
			if !topic.Match(pattern, r.topic) {
				continue
			}
			m := eventkit.NewMessage(r.topic, r.ev.Clone(), 1, nil, nil)
			m.Position = strconv.Itoa(next + 1)
			select {
			case s.msgs <- m:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-grow:
		case <-ctx.Done():
			return
		}
	}
}

func (s *logSub) Messages() <-chan *eventkit.Message { return s.msgs }
func (s *logSub) Err() error                         { return nil }
func (s *logSub) Close() error {
	s.cancel()
	<-s.done
	return nil
}
