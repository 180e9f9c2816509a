package memory

import (
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// delivery is the event of one publish to one queue (a lone subscription or
// a group), and the AckID of its message. It keeps the event as published
// (orig), which nothing hands out, so that every message gets a copy of
// it: the handler of one delivery may change its event (extensions,
// attributes, data, even the data bytes in place) without the publisher,
// another subscription or a redelivery seeing it.
//
// One message of a delivery is in flight at a time. Once it is acked
// nothing can ask for another, so the delivery goes back to a pool with its
// data buffer: the copy kept for redeliveries costs no allocation in the
// steady state.
type delivery struct {
	topic   string
	attempt int
	orig    event.Event
	origCtx event.EventContextV1
	buf     []byte // holds orig's data
}

var deliveries = sync.Pool{New: func() any { return new(delivery) }}

// maxPooledData bounds the data buffer a pooled delivery keeps.
const maxPooledData = 64 << 10

// newDelivery copies e, published to name: nothing of it is shared
// with the publisher.
func newDelivery(name string, e event.Event) *delivery {
	d := deliveries.Get().(*delivery)
	d.topic, d.attempt, d.orig = name, 1, e
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok { // not 1.0: package transport validated the event, so this is not reached
		d.orig = e.Clone()
		return d
	}
	d.origCtx = *ec
	d.origCtx.Extensions = cloneExtensions(ec.Extensions)
	d.orig.Context = &d.origCtx
	d.orig.FieldErrors = nil
	if e.DataEncoded != nil {
		d.buf = append(d.buf[:0], e.DataEncoded...)
		d.orig.DataEncoded = d.buf
	}
	return d
}

// event returns a copy of the event as published.
func (d *delivery) event() event.Event {
	ev := d.orig
	ec, ok := d.orig.Context.(*event.EventContextV1)
	if !ok {
		return d.orig.Clone()
	}
	c := new(event.EventContextV1)
	*c = *ec
	c.Extensions = cloneExtensions(ec.Extensions)
	ev.Context = c
	if d.orig.DataEncoded != nil {
		ev.DataEncoded = append(make([]byte, 0, len(d.orig.DataEncoded)), d.orig.DataEncoded...)
	}
	return ev
}

// release returns d to the pool. Its fields are left as they are (the next
// newDelivery overwrites them; clearing them would cost write barriers on
// the hot path), but a large data buffer is dropped.
func (d *delivery) release() {
	if cap(d.buf) > maxPooledData {
		d.buf = nil
	}
	deliveries.Put(d)
}

func cloneExtensions(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if b, ok := v.([]byte); ok { // the one mutable extension type
			v = append([]byte(nil), b...)
		}
		out[k] = v
	}
	return out
}
