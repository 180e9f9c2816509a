package nats

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// drv is the transport's driver.Publisher and driver.Subscriber.
type drv struct {
	nc        *nats.Conn
	ownsConn  bool // made by Dial: closed by Close
	js        jetstream.JetStream
	cfg       config
	log       *slog.Logger
	apiPrefix string // "$JS.API." unless a domain or prefix is set
	pub       *pubInbox

	// closed is set when the stop begins: publishes in progress send no
	// more (package transport waits for them before closing the driver),
	// and PublishEach, which package transport does not see, fails with
	// eventkit.ErrClosed.
	closed   atomic.Bool
	declared atomic.Bool // the declared streams were ensured

	mu       sync.Mutex
	streams  map[string]*jetstream.StreamConfig // ensured streams by name
	autoDone map[string]string                  // first token -> stream name
}

func newDriver(nc *nats.Conn, owned bool, cfg config) (*drv, error) {
	// jetstream.New does no I/O.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.setupTimeout))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &drv{
		nc: nc, ownsConn: owned, js: js, cfg: cfg, log: cfg.Logger, apiPrefix: apiPrefix(js.Options()),
		pub:      newPubInbox(nc, cfg.maxInFlight, cfg.pubAckTimeout),
		streams:  make(map[string]*jetstream.StreamConfig),
		autoDone: make(map[string]string),
	}, nil
}

// Capabilities declares what the conformance suite proves of the
// transport.
func (t *drv) Capabilities() eventkit.Capabilities {
	return eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapOrderPerKey | eventkit.CapPersistent | eventkit.CapFromStart |
		eventkit.CapBatchPublish | eventkit.CapStartAtTime | eventkit.CapStartAtPosition
}

// ensureDeclared creates or checks the declared streams, once.
func (t *drv) ensureDeclared(ctx context.Context) error {
	if t.declared.Load() {
		return nil
	}
	for _, s := range t.cfg.streams {
		if err := t.ensureStream(ctx, s.js(), t.cfg.updateStreams); err != nil {
			return err
		}
	}
	t.declared.Store(true)
	return nil
}

// SendBatch publishes events (valid, to a valid topic: package transport
// checked them) and returns when JetStream acked every one.
func (t *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	return t.publish(ctx, func(int) string { return name }, events)
}

// publishEach validates the topics and events, as package transport does
// for Publish, then publishes them.
func (t *drv) publishEach(ctx context.Context, topics []string, events []event.Event) error {
	if t.closed.Load() {
		return eventkit.ErrClosed
	}
	if len(topics) != len(events) {
		return fmt.Errorf("nats: publish: %d topics for %d events", len(topics), len(events))
	}
	for i, name := range topics {
		if i > 0 && name == topics[i-1] {
			continue
		}
		if err := topic.ValidateName(name); err != nil {
			return fmt.Errorf("nats: publish: %w", err)
		}
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	return t.publish(ctx, func(i int) string { return topics[i] }, events)
}

// stopPublishing makes publishes in progress send no more and later ones
// fail with eventkit.ErrClosed; the acks of events already sent are still
// awaited.
func (t *drv) stopPublishing() {
	if !t.closed.Swap(true) {
		t.pub.close()
	}
}

// Stopping implements driver.Stopper: a Shutdown begins, so publishes
// stop (see stopPublishing) before package transport waits for them.
func (t *drv) Stopping(context.Context) { t.stopPublishing() }

// Shutdown stops publishing and, if Dial made the connection, flushes it
// within ctx and closes it. Package transport calls it after every publish
// and subscription ended.
func (t *drv) Shutdown(ctx context.Context) error {
	t.stopPublishing()
	if !t.ownsConn || t.nc.IsClosed() {
		return nil
	}
	defer t.nc.Close()
	var err error
	if _, ok := ctx.Deadline(); ok {
		err = t.nc.FlushWithContext(ctx)
	} else {
		err = t.nc.Flush()
	}
	if err != nil {
		return fmt.Errorf("nats: flush the connection before closing it: %w", err)
	}
	return nil
}

// Close is Shutdown without a bound of its own (the connection's flush
// has nats.go's timeout).
func (t *drv) Close() error { return t.Shutdown(context.Background()) }

var (
	_ driver.Publisher  = (*drv)(nil)
	_ driver.Subscriber = (*drv)(nil)
	_ driver.Shutdowner = (*drv)(nil)
	_ driver.Stopper    = (*drv)(nil)
	_ driver.Seeker     = (*drv)(nil)
)
