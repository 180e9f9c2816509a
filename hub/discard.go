package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventkit/eventkit/topic"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// discarder makes room in a full stream for broker.discard old. The
// stream itself refuses new events at its max_bytes (JetStream's discard
// new): JetStream's discard old drops events without telling anyone. The
// hub drops the oldest events itself, having read the topic and sequence
// of each, so that it counts them (eventkit_broker_discarded_total), logs
// them, and tells each subscription whose pattern matches an event it had
// not acknowledged (delivered or dead-lettered) that it lost it
// (eventkit_subscription_lost_total and a warning naming the
// subscription and the count).
//
// An event is taken as not yet acknowledged by a subscription when its
// sequence is above the subscription's ack floor as read just before the
// drop: with concurrency above 1 an event acknowledged out of order, or
// one acknowledged while the drop runs, can be counted lost too, and so
// can an event a Subscriptions API filter would have skipped. The count
// errs on the side of reporting a loss, never of hiding one. Every
// subscription made by addSubscription (of the configuration or of the
// Subscriptions API) is tracked.
type discarder struct {
	js       jetstream.JetStream
	stream   string
	prefix   string // of subjects: "events."
	maxBytes int64
	log      *slog.Logger
	dropped  prometheus.Counter
	lost     *prometheus.CounterVec

	mu sync.Mutex // one drop at a time

	subsMu sync.Mutex
	subs   map[string]discardSub // by name: those of the configuration and of the API
}

// track makes the discarder report to the subscription name, on pattern
// (again: its new pattern). A subscription deleted since has no consumer
// left and is not reported to. A nil discarder does nothing.
func (d *discarder) track(name, pattern string) {
	if d == nil {
		return
	}
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	if d.subs == nil {
		d.subs = map[string]discardSub{}
	}
	d.subs[name] = discardSub{name: name, pattern: pattern, consumer: "hub-" + name}
}

// tracked returns the subscriptions to report to.
func (d *discarder) tracked() []discardSub {
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	out := make([]discardSub, 0, len(d.subs))
	for _, s := range d.subs {
		out = append(out, s)
	}
	return out
}

// discardSub is a subscription, as the discarder sees it.
type discardSub struct {
	name, pattern, consumer string
}

// droppedMsg is a stored event about to be dropped.
type droppedMsg struct {
	seq   uint64
	topic string
}

// maxBytesReached reports whether err is the stream refusing an event at
// its max_bytes.
func maxBytesReached(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jsStoreFailed && strings.Contains(api.Description, "maximum bytes")
}

// makeRoom drops the oldest events until the stream has room for need
// bytes and a hundredth of its bound more (so that a full stream does not
// make every request drop events), and reports what it dropped. A request
// that would not fit in the empty stream drops nothing.
func (d *discarder) makeRoom(ctx context.Context, need int64) error {
	if need+d.maxBytes/100 > d.maxBytes {
		return fmt.Errorf("the request takes about %d bytes stored, more than broker.max_bytes (%d): nothing dropped for it", need, d.maxBytes)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := d.js.Stream(ctx, d.stream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	free := int64(info.State.Bytes) + need + d.maxBytes/100 - d.maxBytes
	if free <= 0 || info.State.Msgs == 0 {
		return nil // a drop made room meanwhile
	}
	msgs, err := d.oldest(ctx, info.State.FirstSeq, free)
	if err != nil || len(msgs) == 0 {
		return err
	}
	subs := d.tracked()
	floors := d.ackFloors(ctx, subs)
	cut := msgs[len(msgs)-1].seq + 1
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(cut)); err != nil {
		return fmt.Errorf("drop the oldest events: %w", err)
	}
	d.report(msgs, subs, floors)
	return nil
}

// oldest reads, headers only, the oldest events from first on until they
// take free bytes.
func (d *discarder) oldest(ctx context.Context, first uint64, free int64) ([]droppedMsg, error) {
	c, err := d.js.CreateConsumer(ctx, d.stream, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: first, HeadersOnly: true,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("read the oldest events: %w", err)
	}
	defer func() { _ = d.js.DeleteConsumer(context.WithoutCancel(ctx), d.stream, c.CachedInfo().Name) }()
	var msgs []droppedMsg
	for free > 0 {
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("read the oldest events: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if free <= 0 {
				continue
			}
			meta, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read the oldest events: %w", err)
			}
			size, _ := strconv.Atoi(m.Headers().Get(natsgo.MsgSize))
			hdr := 0
			for k, vs := range m.Headers() {
				for _, v := range vs {
					hdr += len(k) + len(v) + 4
				}
			}
			free -= int64(size + hdr + len(m.Subject()) + 30)
			msgs = append(msgs, droppedMsg{seq: meta.Sequence.Stream, topic: strings.TrimPrefix(m.Subject(), d.prefix)})
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read the oldest events: %w", err)
		}
		if got == 0 {
			break // the stream holds no more
		}
	}
	return msgs, nil
}

// ackFloors returns, for each subscription whose consumer exists, the
// stream sequence up to which it acknowledged every event.
func (d *discarder) ackFloors(ctx context.Context, subs []discardSub) map[string]uint64 {
	floors := make(map[string]uint64, len(subs))
	for _, s := range subs {
		c, err := d.js.Consumer(ctx, d.stream, s.consumer)
		if err != nil {
			if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				d.log.Warn("broker.discard old: cannot read the progress of a subscription; its loss is counted whole",
					"subscription", s.name, "err", err)
				floors[s.name] = 0
			}
			continue // not subscribed yet: expects no stored event
		}
		info, err := c.Info(ctx)
		if err != nil {
			d.log.Warn("broker.discard old: cannot read the progress of a subscription; its loss is counted whole",
				"subscription", s.name, "err", err)
			floors[s.name] = 0
			continue
		}
		floors[s.name] = info.AckFloor.Stream
	}
	return floors
}

// report counts, logs and attributes the dropped events.
func (d *discarder) report(msgs []droppedMsg, subs []discardSub, floors map[string]uint64) {
	n := len(msgs)
	d.dropped.Add(float64(n))
	d.log.Warn("broker.discard old: dropped the oldest events to make room",
		"events", n, "first_seq", msgs[0].seq, "last_seq", msgs[len(msgs)-1].seq, "max_bytes", d.maxBytes)
	for _, s := range subs {
		floor, ok := floors[s.name]
		if !ok {
			continue
		}
		lost := 0
		for _, m := range msgs {
			if m.seq > floor && topic.Match(s.pattern, m.topic) {
				lost++
			}
		}
		if lost == 0 {
			continue
		}
		d.lost.WithLabelValues(s.name).Add(float64(lost))
		d.log.Warn("subscription lost events it had not delivered: broker.discard old dropped them",
			"subscription", s.name, "events", lost, "ack_floor", floor)
	}
}
