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
// is the payload; in structured mode (WithStructured), for consumers that
// speak MQTT 3.1.1, the payload is the CloudEvents JSON format with Content
// Type application/cloudevents+json. Subscribers read both. On input, a
// datacontenttype user property (the binding's own example carries one
// beside Content Type) is accepted: the Content Type property wins whenever
// it is present, even when the two differ; the user property is used only
// when Content Type is absent. Output carries Content Type only.
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
// MQTT has no negative acknowledgement: Nack acknowledges the message like
// Ack (it is not redelivered) and logs the reason. Message.Attempt is always
// 1. Shared subscriptions give no order per key.
package mqtt
