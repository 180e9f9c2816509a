// Package memory is eventkit's in-process transport: a bus that implements
// eventkit.Publisher and eventkit.Subscriber. It is built on package
// transport (validation, closed state, settle-once messages, graceful stop)
// like every other transport, and is the worked example of
// docs/driver.md: its driver is memory/driver.go.
//
// Every subscription whose pattern matches a topic gets each event published
// to it; subscriptions that share a consumer group (eventkit.WithGroup)
// compete for the events of that group, one message at a time. Each
// subscription, or group, holds its events in a bounded buffer
// (eventkit.WithBuffer, default DefaultBuffer) with a back-pressure policy
// (WithPolicy): Block (the default) makes the publisher wait for room,
// DropOldest discards the oldest buffered event and counts it, Fail makes
// the publish return eventkit.ErrBufferFull. Besides the buffer, a
// subscription holds the messages that package transport received from it
// and has not yet handed over: at most two batches of eventkit.WithBuffer
// messages (of one message for a group member). A nacked message is
// delivered again, with its attempt incremented, after the nack's delay.
//
// Each delivery gets its own event: the bus copies an event when it is
// published (so the publisher may change or reuse the event and its data
// buffer once Publish returns) and again for every message it hands out, a
// redelivery included, which carries the event as published. A handler may
// change its message's event (extensions, attributes, data, the data bytes
// in place) without another subscription, the publisher or a redelivery
// seeing it.
//
// The bus keeps nothing on disk and nothing for a subscription that has
// ended: events buffered for a subscription when it closes are gone (a
// group member's untaken ones go back to its group), and an event published
// to a topic that nothing subscribes to is discarded. Use a broker
// transport (nats, kafka, ...) when events must outlive the process.
package memory

import (
	"fmt"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/transport"
)

// Policy is what a subscription does when its buffer is full.
type Policy int

const (
	// Block makes the publisher wait until there is room (or its context
	// ends). This is the default: nothing is lost.
	Block Policy = iota
	// DropOldest discards the oldest buffered event to make room; the
	// discarded events are counted (Bus.Stats).
	DropOldest
	// Fail makes Publish return eventkit.ErrBufferFull for this subscription.
	Fail
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// policyOption is passed through eventkit.WithTransportOption.
type policyOption Policy

// WithPolicy sets the back-pressure policy of a subscription (for a group,
// the policy of the group's first member applies). A policy other than
// Block, DropOldest and Fail makes Subscribe fail with an error wrapping
// eventkit.ErrInvalidOption.
func WithPolicy(p Policy) eventkit.SubscribeOption {
	return eventkit.WithTransportOption(policyOption(p))
}

// DefaultBuffer is the buffer of a subscription that asks for none.
const DefaultBuffer = 1024

// Bus is an in-process publisher and subscriber. The zero value is not
// usable; create one with New. A Bus is safe for concurrent use. Its
// Publish, Subscribe, Capabilities, Shutdown and Close are those of the
// transport.Transport it is built on; in memory they do this:
//
//   - Publish delivers each event to every subscription (or group) whose
//     pattern matches topic. With the Block policy it waits for room; it
//     returns ctx's error if ctx ends first, and eventkit.ErrClosed once
//     the bus is closed.
//   - Subscribe starts a subscription to pattern. Subscriptions of one
//     group must use the same pattern. Besides eventkit's options, it
//     takes WithPolicy.
//   - Capabilities: wildcards, consumer groups, nacks with a delay,
//     attempt counts, order per key and batch publishing. The bus is not
//     persistent.
//   - Shutdown wakes every blocked publisher (which returns
//     eventkit.ErrClosed), ends every subscription and waits for pending
//     redeliveries to stop, all within ctx. Messages delivered and not
//     settled are gone. Close is Shutdown bounded by
//     transport.DefaultCloseTimeout; the bus does no I/O, so it returns as
//     soon as every subscription's goroutines ended.
type Bus struct {
	*transport.Transport
	d *bus
}

// New returns an empty bus. It cannot fail: the bus has no option with a
// value that could be invalid (a subscription's options are checked by
// Subscribe).
func New() *Bus {
	d := newBus()
	t, err := transport.New(d, d, transport.WithName("memory"))
	if err != nil { // constant, valid options: not reached
		panic(err)
	}
	return &Bus{Transport: t, d: d}
}

// Stats are counters of a bus.
type Stats struct {
	Published uint64 // deliveries enqueued (one per matching subscription or group)
	Dropped   uint64 // events discarded by DropOldest
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{Published: b.d.published.Load(), Dropped: b.d.dropped.Load()}
}

var (
	_ eventkit.Publisher  = (*Bus)(nil)
	_ eventkit.Subscriber = (*Bus)(nil)
	_ eventkit.Capable    = (*Bus)(nil)
)
