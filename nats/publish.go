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
	if err := t.ensureDeclared(ctx); err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	for i := range events {
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
	// One event (the usual HTTP request) needs no slices on the heap.
	var msgsBuf [1]*nats.Msg
	var pendingBuf [1]int
	msgs, pending := msgsBuf[:], pendingBuf[:]
	if len(events) > 1 {
		msgs = make([]*nats.Msg, len(events))
		pending = make([]int, len(events))
	}
	for i := range events {
		name := topicOf(i)
		m, source, err := encodeMsg(name, events[i], t.cfg.mode, 1)
		if err != nil {
			return fmt.Errorf("nats: publish to %q: %w", name, err)
		}
		m.Header[HeaderMsgID] = []string{t.cfg.msgID(name, events[i].ID(), source)}
		msgs[i] = m
		pending[i] = i
	}
	// topics names the topics of the events in error messages.
	topics := func(idx []int) string {
		first := topicOf(idx[0])
		for _, i := range idx[1:] {
			if topicOf(i) != first {
				return fmt.Sprintf("%q and other topics", first)
			}
		}
		return strconv.Quote(first)
	}
	p := t.pub
	c, err := p.begin(len(events))
	if errors.Is(err, errClosedInbox) {
		return eventkit.ErrClosed
	}
	if err != nil {
		return fmt.Errorf("nats: publish to %s: %w", topics(pending), err)
	}
	defer p.end(c)
	var timer callTimer
	defer timer.stop()
	// fatal reports the first failure that is not passing.
	fatal := func() error {
		p.mu.Lock()
		err, i := c.fatal, c.fatalAt
		p.mu.Unlock()
		return fmt.Errorf("nats: publish event %q to %q: %w", events[i].ID(), topicOf(i), err)
	}
	backoff := t.cfg.retryBackoff
	for attempt := 1; ; attempt++ {
		// Send every pending event, each once there is room. Events left
		// unsent because the transport was closed count as failed.
		var unsent []int
	send:
		for k, i := range pending {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("nats: publish to %s: %w", topics(pending), err)
			}
			if t.closed.Load() {
				unsent = pending[k:]
				break send
			}
			select {
			case p.room <- struct{}{}:
			default:
				switch err := p.waitRoom(ctx, c, &timer); {
				case errors.Is(err, errStopped):
					unsent = pending[k:]
					break send
				case errors.Is(err, errCallFailed):
					return fatal()
				case err != nil:
					return fmt.Errorf("nats: publish to %s: %w", topics(pending), err)
				}
			}
			p.mu.Lock()
			if c.fatal != nil {
				p.mu.Unlock()
				<-p.room
				return fatal()
			}
			n := p.sendLocked(c, i)
			p.mu.Unlock()
			m := msgs[i]
			m.Reply = p.reply(c, n)
			if err := t.nc.PublishMsg(m); err != nil {
				p.mu.Lock()
				if c.cur[i] == uint32(n)+1 {
					p.resolveLocked(c, i, err)
				}
				p.mu.Unlock()
			}
		}
		// Wait until every send is resolved (acked, failed, timed out).
		if err := p.waitAcks(ctx, c, &timer); err != nil {
			if errors.Is(err, errCallFailed) {
				return fatal()
			}
			return fmt.Errorf("nats: publish to %s: %w", topics(pending), err)
		}
		p.mu.Lock()
		retry, lastErr := c.failed, c.lastErr
		c.failed = nil
		p.mu.Unlock()
		if len(unsent) > 0 {
			retry = append(retry, unsent...)
			if lastErr == nil {
				lastErr = errStopped
			}
		}
		if len(retry) == 0 {
			return nil
		}
		// Resend in the original order.
		slices.Sort(retry)
		if t.closed.Load() {
			return fmt.Errorf("nats: publish to %s: %w (last error: %v)", topics(retry), eventkit.ErrClosed, lastErr)
		}
		t.log.Debug("nats: resending events", "topic", topicOf(retry[0]), "count", len(retry), "attempt", attempt, "error", lastErr)
		select {
		case <-timer.arm(backoff):
		case <-ctx.Done():
			return fmt.Errorf("nats: publish to %s: %w (last error: %v)", topics(retry), ctx.Err(), lastErr)
		}
		backoff = min(backoff*2, t.cfg.maxRetryBackof)
		pending = retry
	}
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
