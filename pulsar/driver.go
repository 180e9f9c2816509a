package pulsar

import (
	"context"
	"errors"
	"fmt"
	"sync"

	ps "github.com/apache/pulsar-client-go/pulsar"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/jsonvalid"
	"github.com/eventkit/eventkit/transport"
)

// capabilities are what the Pulsar driver guarantees.
const capabilities = eventkit.CapConsumerGroups | eventkit.CapNack | eventkit.CapAttemptCount |
	eventkit.CapPersistent | eventkit.CapFromStart | eventkit.CapOrderPerKey | eventkit.CapBatchPublish |
	eventkit.CapStartAtTime | eventkit.CapStartAtPosition

// contentTypeProperty is the message property that holds the content type.
const contentTypeProperty = "content-type"

// drv is the Pulsar driver: a driver.Publisher and a driver.Subscriber in
// one value.
type drv struct {
	client     ps.Client
	o          options
	ownsClient bool

	mu        sync.Mutex
	producers map[string]ps.Producer // by full topic name
}

func (d *drv) topic(name string) string {
	return "persistent://" + d.o.tenant + "/" + d.o.namespace + "/" + name
}

func (d *drv) Capabilities() eventkit.Capabilities { return capabilities }

// producer returns the producer of a full topic name, made once.
func (d *drv) producer(full string) (ps.Producer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.producers[full]; ok {
		return p, nil
	}
	// Key-based batches: a Key_Shared subscription hands a whole batch to
	// the member of its first key, so a batch holds one key.
	p, err := d.client.CreateProducer(ps.ProducerOptions{Topic: full, BatcherBuilderType: ps.KeyBasedBatchBuilder})
	if err != nil {
		return nil, err
	}
	d.producers[full] = p
	return p, nil
}

// SendBatch encodes every event, then sends them in order on the topic's
// producer and waits until the broker acknowledged each.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	full := d.topic(name)
	p, err := d.producer(full)
	if err != nil {
		return fmt.Errorf("pulsar: producer of %q: %w", full, err)
	}
	msgs := make([]*ps.ProducerMessage, len(events))
	for i := range events {
		if msgs[i], err = encode(events[i]); err != nil {
			return driver.Permanent(fmt.Errorf("pulsar: publish: encode event %q: %w", events[i].ID(), err))
		}
	}
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, msg := range msgs {
		wg.Add(1)
		p.SendAsync(ctx, msg, func(_ ps.MessageID, _ *ps.ProducerMessage, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pulsar: publish to %q: %w", full, err)
	}
	return nil
}

// encode returns the message of e in the CloudEvents JSON format; data
// that is not JSON travels as data_base64.
func encode(e event.Event) (*ps.ProducerMessage, error) {
	if data := e.Data(); len(data) > 0 {
		e.DataBase64 = !eventkit.IsJSONContentType(e.DataContentType()) || !jsonvalid.Valid(data)
	}
	b, err := eventkit.MarshalEvent(e)
	if err != nil {
		return nil, err
	}
	// An event without a key is keyed by its id, so that the members of a
	// group share unkeyed events.
	key := eventkit.EventKey(e)
	if key == "" {
		key = e.ID()
	}
	return &ps.ProducerMessage{Payload: b, Key: key,
		Properties: map[string]string{contentTypeProperty: eventkit.StructuredContentType}}, nil
}

// decode returns the event of a message.
func decode(m ps.Message) (event.Event, error) {
	if ct := m.Properties()[contentTypeProperty]; ct != eventkit.StructuredContentType {
		return event.Event{}, fmt.Errorf("%w (content-type %q): %w", errNotStructured, ct, eventkit.ErrNotCloudEvent)
	}
	return eventkit.UnmarshalEvent(m.Payload())
}

// OpenSubscription subscribes to one topic: a durable Key_Shared
// subscription named after the group, or a private exclusive one.
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if err := transport.NoSubscribeOptions("pulsar", cfg.Options); err != nil {
		return nil, err
	}
	if cfg.StartPosition != "" {
		if _, err := parsePosition(cfg.StartPosition); err != nil {
			return nil, err
		}
	}
	return newSubscription(ctx, d, pattern, cfg)
}

// Close closes the producers, and the client if Dial made it.
func (d *drv) Close() error {
	d.mu.Lock()
	for _, p := range d.producers {
		p.Close()
	}
	d.producers = map[string]ps.Producer{}
	d.mu.Unlock()
	if d.ownsClient {
		d.client.Close()
	}
	return nil
}
