// Package mqtt is eventkit's MQTT 5 transport, on
// github.com/eclipse/paho.golang (autopaho, which reconnects by itself).
//
// Topics map to MQTT topic names with '.' as '/' ("orders.eu.created" is
// "orders/eu/created"); patterns map to topic filters ("*" is "+", ">" is
// "#", see topic.ToMQTT). Since MQTT's "#" also matches the parent level,
// deliveries are filtered with topic.Match as well.
//
// The binding is the CloudEvents MQTT binding: in binary mode (the
// default), MQTT 5 only, datacontenttype is the Content Type property, every
// other attribute is a user property with its name unchanged, and the data
// is the payload; in structured mode (WithMode(eventkit.Structured)), for
// consumers that speak MQTT 3.1.1, the payload is the CloudEvents JSON format with Content
// Type application/cloudevents+json. Subscribers read both. On input, a
// datacontenttype user property (the binding's own example carries one
// beside Content Type) is accepted: the Content Type property wins whenever
// it is present, even when the two differ; the user property is used only
// when Content Type is absent. Output carries Content Type only. A message
// whose user properties are named "ce-" + attribute, as the CloudEvents Go
// SDK's MQTT binding writes them, is read too when it has no specversion
// property of the binding's own style.
//
// Events are published at QoS 1 by default (WithQoS: 0, 1 or 2); Publish
// returns when the broker acknowledged each (PUBACK or PUBCOMP; at once for
// QoS 0). A consumer group is a shared subscription ("$share/GROUP/filter"):
// the broker gives each event to one member. Every subscription has its own
// MQTT connection. With the subscription option Session(id), the connection
// uses a persistent session (client identifier id, clean start off, session
// expiry WithSessionExpiry): the broker keeps the subscription and queues
// QoS >= 1 events while the subscriber is away, and delivers them, with
// those it had delivered and not seen acknowledged, when it comes back.
//
// MQTT has no negative acknowledgement, and the transport does not declare
// eventkit.CapNack: Message.Nack (and NackAfter) returns a
// *eventkit.CapabilityError wrapping eventkit.ErrUnsupported and leaves the
// message unsettled, instead of acknowledging it as if it had been
// handled: the caller still acknowledges it (after sending it to a
// dead-letter topic, say). MQTT acknowledges in the order of receipt, so a
// message never settled holds back every later acknowledgement on its
// connection. The Router does this for you: when a handler fails on
// MQTT, it logs the failure at error level and acknowledges the message
// (middleware.DeadLetter keeps failed events). A consumer that retries by
// nacking subscribes with eventkit.Require(eventkit.CapNack) and is
// refused at Subscribe. Message.
// Attempt is always 1. The transport's capabilities (eventkit.
// CapabilitiesOf) are wildcards and consumer groups only: a shared
// subscription keeps nothing for a group without members (no
// eventkit.CapPersistent) and gives no order per key. QoS 0 is at most
// once; Session needs QoS 1 or 2 and is refused at QoS 0.
//
// The transport is built on package transport, which validates topics,
// patterns, events and options (an invalid option value makes Dial fail
// with an error wrapping eventkit.ErrInvalidOption), settles each message
// once, batches acks and stops gracefully: Shutdown(ctx) ends every
// subscription and disconnects within ctx; Close is Shutdown bounded by
// WithCloseTimeout. A message that is no valid CloudEvent is acknowledged
// and logged with an error wrapping eventkit.ErrNotCloudEvent.
package mqtt
