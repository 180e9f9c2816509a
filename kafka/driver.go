package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/eventkit/eventkit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// drv is the transport's driver.Publisher and driver.Subscriber: the Kafka
// protocol, on franz-go. Package transport validates, tracks the closed
// state and the subscriptions, and settles messages once.
type drv struct {
	cfg  config
	prod *kgo.Client
	adm  *kadm.Client

	known sync.Map // Kafka topics known to exist

	// closed is set when the stop begins: PublishAsync and the Transactor,
	// which package transport does not see, fail with eventkit.ErrClosed.
	closed atomic.Bool
	// stopping is set by the first Transport.Shutdown.
	stopping atomic.Bool

	mu   sync.Mutex
	subs map[*subscription]struct{} // for the metadata refresh of a new topic
}

func newDriver(cfg config) (*drv, error) {
	popts := append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...)}, cfg.clientOpts...)
	popts = append(popts, kgo.MaxBufferedRecords(cfg.maxInFlight))
	popts = append(popts, cfg.producerOpts...)
	prod, err := kgo.NewClient(popts...) // no I/O
	if err != nil {
		return nil, fmt.Errorf("kafka: producer client: %w", err)
	}
	return &drv{cfg: cfg, prod: prod, adm: kadm.NewClient(prod), subs: make(map[*subscription]struct{})}, nil
}

// Capabilities declares what the conformance suite proves of the
// transport.
func (d *drv) Capabilities() eventkit.Capabilities {
	return eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapNackDelay |
		eventkit.CapAttemptCount | eventkit.CapOrderPerKey | eventkit.CapPersistent | eventkit.CapFromStart |
		eventkit.CapBatchPublish | eventkit.CapStartAtTime | eventkit.CapStartAtPosition
}

// Shutdown implements driver.Shutdowner. Package transport calls it once,
// after every publish returned and every subscription closed: it flushes
// what PublishAsync produced and closes the producer, whose records not yet
// acknowledged then fail. It returns the flush's error (ctx's when ctx
// ended first).
func (d *drv) Shutdown(ctx context.Context) error {
	d.closed.Store(true)
	err := d.prod.Flush(ctx)
	d.prod.Close()
	if err != nil {
		return fmt.Errorf("kafka: flush: %w", err)
	}
	return nil
}

// Close is Shutdown without a bound.
func (d *drv) Close() error { return d.Shutdown(context.Background()) }

// refreshSubscriptions makes the pattern subscriptions see a topic this
// transport created, now rather than at their next metadata refresh.
func (d *drv) refreshSubscriptions() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		s.cl.ForceMetadataRefresh()
	}
}

func (d *drv) track(s *subscription) {
	d.mu.Lock()
	d.subs[s] = struct{}{}
	d.mu.Unlock()
}

func (d *drv) forget(s *subscription) {
	d.mu.Lock()
	delete(d.subs, s)
	d.mu.Unlock()
}
