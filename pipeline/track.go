package pipeline

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// tracker follows one source message through the pipeline: refs counts
// the items that descend from it and are not settled yet. The message is
// acked when the count reaches zero and nothing failed, and nacked at the
// first failure.
type tracker struct {
	rs     *runState
	src    *runSource
	msg    *eventkit.Message
	refs   atomic.Int64
	failed atomic.Bool
	self   [1]*tracker // the srcs of the source's items, without an allocation
}

// add gives the tracker n more references.
func (t *tracker) add(n int64) { t.refs.Add(n) }

// release drops one reference; the last one settles the message.
func (t *tracker) release() {
	if t.refs.Add(-1) != 0 {
		return
	}
	if !t.failed.Load() {
		if err := t.msg.Ack(); err != nil {
			t.rs.p.logger.Warn("pipeline: ack failed", "source", t.src.Name, "id", t.msg.Event.ID(), "err", err)
		}
		t.src.stats.acked.Add(1)
	}
	t.src.stats.inFlight.Add(-1)
	<-t.src.slots
}

// fail nacks the message (once) and drops one reference.
func (t *tracker) fail(stage string, err error, delay time.Duration) {
	if t.failed.CompareAndSwap(false, true) {
		t.src.stats.nacked.Add(1)
		t.rs.nack(t, stage, err, delay)
	}
	t.release()
}

// item is one event on its way through the stages, with the source
// messages it descends from (one reference on each).
type item struct {
	ev      event.Event
	topic   string
	attempt int
	srcs    []*tracker
}

// transfer moves the references of the given trackers (one per entry) to
// n new items: each entry gets n-1 more references, or is released when
// n is 0.
func transfer(srcs []*tracker, n int) {
	for _, t := range srcs {
		if n == 0 {
			t.release()
		} else if n > 1 {
			t.add(int64(n - 1))
		}
	}
}

// unit is what a stage's handler works on: one item, or a batch.
type unit struct {
	items []item
	outs  []eventItem
	one   [1]item        // items of a single-item unit
	out1  [1]eventItem   // outs of a one-output unit
	evs   [1]event.Event // the stage function's output buffer

	acked     bool
	nacked    bool
	nackErr   error
	nackDelay time.Duration
}

// eventItem is an output event with the node it goes to.
type eventItem struct {
	ev   event.Event
	node *Node
}

// unitAcker settles the stage's message: it records what the middleware
// decided, which the stage then applies to the unit's source messages.
type unitAcker struct{}

func (unitAcker) Ack(m *eventkit.Message) error {
	m.Raw().(*unit).acked = true
	return nil
}

func (unitAcker) Nack(m *eventkit.Message, reason error, delay time.Duration) error {
	u := m.Raw().(*unit)
	u.nacked, u.nackErr, u.nackDelay = true, reason, delay
	return nil
}

// srcs returns the source trackers of every item of the unit.
func (u *unit) srcs() []*tracker {
	if len(u.items) == 1 {
		return u.items[0].srcs
	}
	var out []*tracker
	for _, it := range u.items {
		out = append(out, it.srcs...)
	}
	return out
}

// fail fails every source message of the unit.
func (u *unit) fail(stage string, err error, delay time.Duration) {
	for _, t := range u.srcs() {
		t.fail(stage, err, delay)
	}
}

// retryDelay is the delay a failed event's error asks for, or 0.
func retryDelay(err error) time.Duration {
	var ra *eventkit.RetryAfterError
	if errors.As(err, &ra) {
		return ra.Delay
	}
	return 0
}
