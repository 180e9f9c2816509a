package eventkit

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// Capabilities is a set of guarantees a transport gives beyond what every
// transport gives (see package eventkittest for that floor). A transport
// declares its capabilities; CapabilitiesOf reads them at run time, and the
// publishers and subscribers of package transport refuse, with an error
// wrapping ErrUnsupported, a configuration that needs a capability the
// transport lacks, instead of weakening it silently.
type Capabilities uint32

// The capabilities. Each is a single bit; combine them with |.
const (
	// CapWildcards: Subscribe accepts patterns with "*" and ">" (see
	// package topic).
	CapWildcards Capabilities = 1 << iota
	// CapConsumerGroups: subscriptions made with WithGroup share the events
	// of their group, each event going to one member.
	CapConsumerGroups
	// CapNack: a nacked message is delivered again. Without it, a Nack is
	// refused (MQTT, for one, cannot ask the broker for a redelivery).
	CapNack
	// CapNackDelay: a message nacked with NackAfter(d) comes back no sooner
	// than d. Without it, NackAfter with a positive delay is refused.
	CapNackDelay
	// CapAttemptCount: Message.Attempt counts the deliveries of an event,
	// redeliveries by the broker included.
	CapAttemptCount
	// CapOrderPerKey: events that share a key (EventKey), published one
	// after another, reach a subscription (and a group) in that order.
	CapOrderPerKey
	// CapPersistent: events are kept for a group while it has no member,
	// and a group resumes where it left off.
	CapPersistent
	// CapFromStart: a new group or subscription can start at the oldest
	// retained event (FromStart).
	CapFromStart
	// CapBatchPublish: a Publish of many events costs about one round trip
	// to the broker, not one per event.
	CapBatchPublish
	// CapStartAtTime: a new group or subscription can start at the first
	// event stored at or after a time (StartAt), and a Seeker can move an
	// existing group there.
	CapStartAtTime
	// CapStartAtPosition: a new group or subscription can start at a
	// position the transport gave in Message.Position (StartAtPosition),
	// and a Seeker can move an existing group there.
	CapStartAtPosition

	capEnd // one past the last capability
)

var capNames = [...]string{
	"wildcards", "consumer-groups", "nack", "nack-delay", "attempt-count",
	"order-per-key", "persistent", "from-start", "batch-publish",
	"start-at-time", "start-at-position",
}

// Has reports whether c holds every capability of want.
func (c Capabilities) Has(want Capabilities) bool { return c&want == want }

// Missing returns the capabilities of want that c lacks.
func (c Capabilities) Missing(want Capabilities) Capabilities { return want &^ c }

// String lists the capabilities by name, joined by "|" ("none" for the
// empty set), for example "wildcards|nack".
func (c Capabilities) String() string {
	if c == 0 {
		return "none"
	}
	var b strings.Builder
	for c != 0 {
		i := bits.TrailingZeros32(uint32(c))
		c &^= 1 << i
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		if Capabilities(1)<<i < capEnd {
			b.WriteString(capNames[i])
		} else {
			fmt.Fprintf(&b, "capability(%d)", i)
		}
	}
	return b.String()
}

// Capable is implemented by the publishers and subscribers that declare
// their capabilities (every one built with package transport does).
type Capable interface {
	// Capabilities returns what the transport guarantees. It is constant
	// for the value's life and safe for concurrent use.
	Capabilities() Capabilities
}

// CapabilitiesOf returns the capabilities that x (a Publisher, a
// Subscriber, a Subscription) declares, or 0 when it declares none.
func CapabilitiesOf(x any) Capabilities {
	if c, ok := x.(Capable); ok {
		return c.Capabilities()
	}
	return 0
}

// ErrUnsupported is wrapped by the errors of operations and configurations
// that need a capability the transport lacks.
var ErrUnsupported = errors.New("eventkit: unsupported by the transport")

// CapabilityError reports a request that needs capabilities a transport
// lacks. It wraps ErrUnsupported.
type CapabilityError struct {
	// Transport names the transport ("redis", "mqtt", ...).
	Transport string
	// Op is what was asked ("subscribe with a group", "nack with a delay").
	Op string
	// Missing is the capabilities needed and not declared.
	Missing Capabilities
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("%s: %s: unsupported: the transport lacks %s", e.Transport, e.Op, e.Missing)
}

// Unwrap returns ErrUnsupported.
func (e *CapabilityError) Unwrap() error { return ErrUnsupported }

// Require returns a SubscribeOption asking for the capabilities want: a
// subscriber built with package transport refuses the subscription with a
// *CapabilityError when it lacks any of them. For example, a consumer that
// retries by nacking with a delay subscribes with
// Require(CapNack|CapNackDelay) and fails at start on MQTT rather than
// acking its failures.
func Require(want Capabilities) SubscribeOption {
	return WithTransportOption(Required(want))
}

// Required is the transport option that Require adds to
// SubscribeConfig.Transport. Subscribers built with package transport read
// and remove it; a transport that sees one checks it itself.
type Required Capabilities
