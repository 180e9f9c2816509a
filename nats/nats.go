package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/transport"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transport publishes and subscribes through NATS JetStream. It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent
// use. Its Publish, Subscribe, Capabilities, Shutdown and Close are those
// of the transport.Transport it is built on (which gives it its
// validation, closed state, settle-once messages and graceful stop); on
// NATS they do this:
//
//   - Publish publishes the events to the subject topic asynchronously, at
//     most WithMaxInFlight awaiting their ack at once, and returns when
//     JetStream acked every one of them (or with an error). Nothing is
//     sent if the topic or one event is invalid. An event whose publish
//     failed for a passing reason (disconnection, server restart, ack
//     timeout) is sent again with the same Nats-Msg-Id, so that the stream
//     keeps one copy; this goes on until ctx ends. Events of one call are
//     stored in order unless such a resend happens. A publish that the
//     stream's duplicate window drops counts as a success.
//   - Subscribe starts a subscription to pattern (a NATS subject: "*"
//     matches one token, ">" the rest), which must fall in one stream.
//     With eventkit.WithGroup, the subscription is a member of a durable
//     pull consumer named after the group: members share its messages,
//     and the consumer keeps its position while no member runs. Without
//     group, the subscription has a consumer of its own, deleted when it
//     closes (and by the server after WithInactiveThreshold if the process
//     dies). A new consumer starts at the next event published, or at the
//     oldest retained one with eventkit.FromStart. Every message is acked
//     explicitly; Nack and NackAfter send a negative ack (with the delay),
//     and Message.Attempt is JetStream's delivery count.
//     eventkit.WithBuffer bounds the messages held received and not yet
//     taken (default WithSubscriptionBuffer). While JetStream is
//     unavailable (the server restarting, or recovering its streams),
//     Subscribe waits for it until ctx ends, as Publish does; each
//     management call to the server is bounded by WithSetupTimeout.
//     Closing the subscription nacks the messages received and not yet
//     taken, so that they come back at once (to another member of the
//     group); messages taken and not settled come back after the ack wait.
//   - Capabilities: wildcards, consumer groups, nack with a delay, attempt
//     counts, order per subject, persistence, FromStart and pipelined
//     batches.
//   - Shutdown ends every subscription (nacking what they hold, deleting
//     their own consumers), makes later publishes fail with
//     eventkit.ErrClosed, and waits for the publishes in progress, all
//     within ctx. Publish calls in progress keep the acks of the events
//     they sent, send no more, and fail with eventkit.ErrClosed if an
//     event is left unacked. It closes the connection only if Dial made
//     it, and returns every error met. Close is Shutdown bounded by
//     WithCloseTimeout.
type Transport struct {
	*transport.Transport
	d *drv
}

// New returns a transport on nc, which the caller owns: Close does not
// close it. New does no I/O: declared streams (WithStream) are created or
// checked by EnsureStreams, or else by the first Publish or Subscribe.
func New(nc *nats.Conn, opts ...Option) (*Transport, error) {
	if nc == nil {
		return nil, eventkit.InvalidOption("nats.New", "the connection must not be nil")
	}
	return newTransport(nc, false, opts)
}

// Dial connects to the NATS server at url (with the connection options of
// WithConnectOptions), creates or checks the declared streams, all within
// ctx, and returns a transport that owns the connection: Close closes it.
func Dial(ctx context.Context, url string, opts ...Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	nc, err := connect(ctx, url, cfg.connect)
	if err != nil {
		return nil, fmt.Errorf("nats: dial %s: %w", url, err)
	}
	t, err := newTransport(nc, true, opts)
	if err == nil {
		if err = t.EnsureStreams(ctx); err != nil {
			_ = t.Close()
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return t, nil
}

// connect is nats.Connect bounded by ctx: the connection's timeout is ctx's
// deadline, and a connection made after ctx ended is closed.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts[:len(opts):len(opts)], nats.Timeout(max(time.Until(dl), time.Millisecond)))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		return r.nc, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

func newTransport(nc *nats.Conn, owned bool, opts []Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	d, err := newDriver(nc, owned, cfg)
	if err != nil {
		return nil, err
	}
	pt, err := transport.New(d, d, cfg.Options()...)
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: pt, d: d}, nil
}

// EnsureStreams creates the declared streams (WithStream) that are
// missing and checks those that exist (a *StreamMismatchError for other
// settings, unless WithStreamUpdate), waiting for JetStream while it is
// unavailable, until ctx ends. Dial calls it; a transport made with New
// calls it on its first Publish or Subscribe, under that call's ctx.
func (t *Transport) EnsureStreams(ctx context.Context) error { return t.d.ensureDeclared(ctx) }

// JetStream returns the transport's JetStream context (for administration).
func (t *Transport) JetStream() jetstream.JetStream { return t.d.js }

// PublishEach is Publish with a topic per event: events[i] goes to
// topics[i]. Every event is sent before the first ack is awaited, so a
// call costs one round trip to the server whatever the number of topics
// (Publish once per topic would cost one each). Events of one topic are
// stored in their order in events unless a resend happens.
func (t *Transport) PublishEach(ctx context.Context, topics []string, events []event.Event) error {
	return t.d.publishEach(ctx, topics, events)
}

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
	_ eventkit.Seeker     = (*Transport)(nil)
)
