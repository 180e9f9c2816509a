package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publish publishes events[i] to topicOf(i) (validated topics, valid
// events, at least one), asynchronously, at most WithMaxInFlight awaiting
// their ack at once, and returns when JetStream acked every one of them.
// An event whose publish failed for a passing reason is sent again with
// the same Nats-Msg-Id until ctx ends.
func (t *drv) publish(ctx context.Context, topicOf func(int) string, events []event.Event) error {
	if err := t.ensureStreams(ctx, topicOf, len(events)); err != nil {
		return err
	}
	// One event (the usual HTTP request) needs no slice of indexes on the
	// heap.
	var pendingBuf [1]int
	b := pubBatch{topicOf: topicOf, events: events, msgID: t.cfg.msgID}
	pending := pendingBuf[:]
	if len(events) > 1 {
		pending = make([]int, len(events))
	}
	for i := range pending {
		pending[i] = i
	}
	if t.cfg.Mode == Structured {
		// Encoding can fail: every event is encoded before any is sent.
		b.msgs = make([]*nats.Msg, len(events))
		if err := b.encodeAll(); err != nil {
			return err
		}
	} else {
		b.scratch = new(pubScratch)
	}
	c, err := t.pub.begin(len(events))
	if errors.Is(err, errClosedInbox) {
		return eventkit.ErrClosed
	}
	if err != nil {
		return fmt.Errorf("nats: publish to %s: %w", b.topics(pending), err)
	}
	defer t.pub.end(c)
	var timer callTimer
	defer timer.stop()
	backoff := t.cfg.retryBackoff
	for attempt := 1; ; attempt++ {
		retry, lastErr, err := t.sendRound(ctx, c, &timer, b, pending)
		if err != nil || len(retry) == 0 {
			return err
		}
		if t.closed.Load() {
			return fmt.Errorf("nats: publish to %s: %w (last error: %v)", b.topics(retry), eventkit.ErrClosed, lastErr)
		}
		t.log.Debug("nats: resending events", "topic", topicOf(retry[0]), "count", len(retry), "attempt", attempt, "error", lastErr)
		select {
		case <-timer.arm(backoff):
		case <-ctx.Done():
			return fmt.Errorf("nats: publish to %s: %w (last error: %v)", b.topics(retry), ctx.Err(), lastErr)
		}
		backoff = min(backoff*2, t.cfg.maxRetryBackof)
		pending = retry
	}
}

// pubBatch is the events of one publish call, their topics and their
// encoded messages: encoded all before the first is sent in structured
// mode (msgs), or each as it is sent in binary mode (scratch), which cannot
// fail, into one message whose header map and values are used again:
// nc.PublishMsg copies a message into the connection's buffer before it
// returns.
type pubBatch struct {
	topicOf func(int) string
	events  []event.Event
	msgID   func(topic, id, source string) string
	msgs    []*nats.Msg
	scratch *pubScratch
}

// pubScratch is the message that binary mode encodes each event into.
type pubScratch struct {
	m    nats.Msg
	vals []string // the header values' backing array
	id   [1]string
}

// msg returns the message of event i, with its Nats-Msg-Id.
func (b pubBatch) msg(i int) *nats.Msg {
	if b.scratch == nil {
		return b.msgs[i]
	}
	sc, e, name := b.scratch, b.events[i], b.topicOf(i)
	if sc.m.Header == nil {
		sc.m.Header = make(nats.Header, 8)
		sc.vals = make([]string, 0, 8)
	} else {
		clear(sc.m.Header)
		sc.vals = sc.vals[:0]
	}
	source := binaryHeader(sc.m.Header, &sc.vals, e)
	sc.id[0] = b.msgID(name, e.ID(), source)
	sc.m.Header[HeaderMsgID] = sc.id[:]
	sc.m.Subject, sc.m.Data = name, e.Data()
	return &sc.m
}

// encodeAll fills b.msgs with the encoded events, each with its
// Nats-Msg-Id.
func (b pubBatch) encodeAll() error {
	for i := range b.events {
		name := b.topicOf(i)
		m, source, err := encodeMsg(name, b.events[i], Structured, 1)
		if err != nil {
			return fmt.Errorf("nats: publish to %q: %w", name, err)
		}
		m.Header[HeaderMsgID] = []string{b.msgID(name, b.events[i].ID(), source)}
		b.msgs[i] = m
	}
	return nil
}

// topics names the topics of the events idx in error messages.
func (b pubBatch) topics(idx []int) string {
	first := b.topicOf(idx[0])
	for _, i := range idx[1:] {
		if b.topicOf(i) != first {
			return fmt.Sprintf("%q and other topics", first)
		}
	}
	return strconv.Quote(first)
}

// ensureStreams makes sure that a stream stores each of the n topics
// (looked up once per run of equal topics).
func (t *drv) ensureStreams(ctx context.Context, topicOf func(int) string, n int) error {
	if err := t.ensureDeclared(ctx); err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	for i := 0; i < n; i++ {
		name := topicOf(i)
		if i > 0 && name == topicOf(i-1) {
			continue
		}
		if !t.declaredStreamStores(name) {
			if _, err := t.streamFor(ctx, name); err != nil {
				return fmt.Errorf("nats: publish to %q: %w", name, err)
			}
		}
	}
	return nil
}

// sendRound sends the pending events and waits until each send is
// resolved (acked, failed, timed out). It returns the events to send
// again, in the original order (those whose send failed for a passing
// reason, and those left unsent because the transport was closed), with
// the last error; or the error that ends the call.
func (t *drv) sendRound(ctx context.Context, c *pubCall, timer *callTimer, b pubBatch, pending []int) (retry []int, lastErr error, err error) {
	p := t.pub
	unsent, err := t.sendAll(ctx, c, timer, b, pending)
	if err == nil {
		err = p.waitAcks(ctx, c, timer)
	}
	if errors.Is(err, errCallFailed) {
		return nil, nil, t.fatal(c, b)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("nats: publish to %s: %w", b.topics(pending), err)
	}
	p.mu.Lock()
	retry, lastErr = c.failed, c.lastErr
	c.failed = nil
	p.mu.Unlock()
	if len(unsent) > 0 {
		retry = append(retry, unsent...)
		if lastErr == nil {
			lastErr = errStopped
		}
	}
	slices.Sort(retry)
	return retry, lastErr, nil
}

// sendAll sends every pending event, each once there is room, and returns
// the events left unsent because the transport was closed. An error
// errCallFailed means that a send failed for good.
func (t *drv) sendAll(ctx context.Context, c *pubCall, timer *callTimer, b pubBatch, pending []int) (unsent []int, err error) {
	p := t.pub
	for k, i := range pending {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t.closed.Load() {
			return pending[k:], nil
		}
		select {
		case p.room <- struct{}{}:
		default:
			switch err := p.waitRoom(ctx, c, timer); {
			case errors.Is(err, errStopped):
				return pending[k:], nil
			case err != nil:
				return nil, err
			}
		}
		p.mu.Lock()
		if c.fatal != nil {
			p.mu.Unlock()
			<-p.room
			return nil, errCallFailed
		}
		n := p.sendLocked(c, i)
		p.mu.Unlock()
		m := b.msg(i)
		m.Reply = p.reply(c, n)
		if err := t.nc.PublishMsg(m); err != nil {
			p.mu.Lock()
			if c.cur[i] == uint32(n)+1 {
				p.resolveLocked(c, i, err)
			}
			p.mu.Unlock()
		}
	}
	return nil, nil
}

// fatal reports the first failure of call c that is not passing.
func (t *drv) fatal(c *pubCall, b pubBatch) error {
	t.pub.mu.Lock()
	err, i := c.fatal, c.fatalAt
	t.pub.mu.Unlock()
	return fmt.Errorf("nats: publish event %q to %q: %w", b.events[i].ID(), b.topicOf(i), err)
}

// declaredStreamStores reports whether a declared stream stores topic name
// (a subject without wildcards), which is what streamFor finds first; it
// allocates nothing, unlike streamFor, so that publishing to a declared
// stream does not pay for the lookup.
func (t *drv) declaredStreamStores(name string) bool {
	for _, s := range t.cfg.streams {
		for _, subj := range s.Subjects {
			if topic.Match(subj, name) {
				return true
			}
		}
	}
	return false
}

// retryable reports whether a publish error may pass by itself.
func retryable(err error) bool {
	switch {
	case errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, errAckTimeout),
		errors.Is(err, errStopped):
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 && !storeFull(apiErr)
	}
	return false
}

// storeFull reports whether a JetStream error says the store cannot take
// the event: the stream at its limit with DiscardNew, JetStream out of
// resources, the disk full. Resending would wait the whole publish
// timeout for nothing, so the publish fails at once.
func storeFull(e *jetstream.APIError) bool {
	const insufficientResources, storeFailed = 10023, 10077
	switch e.ErrorCode {
	case insufficientResources:
		return true
	case storeFailed:
		return strings.Contains(e.Description, "maximum bytes") || strings.Contains(e.Description, "no space")
	}
	return false
}
