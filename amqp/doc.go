// Package amqp is eventkit's RabbitMQ transport, on
// github.com/rabbitmq/amqp091-go (AMQP 0-9-1).
//
// Events are published to one durable topic exchange ("eventkit" by
// default) with the topic as routing key, as persistent messages, with
// publisher confirms: Publish returns when the broker has confirmed every
// event. A pattern maps to a binding key ("*" stays "*", ">" becomes "#");
// since AMQP's "#" also matches zero words, deliveries are filtered with
// topic.Match as well.
//
// A consumer group is a durable quorum queue named after the group, bound to
// the exchange; its members share it, and each group gets every event. A
// subscription without a group gets a private quorum queue of its own,
// deleted when the subscription closes (and by the broker, through x-expires,
// when its process is gone). Quorum queues count deliveries: Message.Attempt
// is the queue's x-delivery-count header plus one.
//
// The binding: no CloudEvents binding exists for AMQP 0-9-1. Binary mode
// follows the AMQP 1.0 binding in its JMS-compatible form: each attribute
// is a message header named "cloudEvents_" + name, with its canonical string
// value; datacontenttype is the content-type property; the data is the
// body. Structured mode (WithMode(eventkit.Structured)) sends the
// CloudEvents JSON format with content type application/cloudevents+json.
// Subscribers read both. A message that is no valid CloudEvent is rejected
// (dead-lettered, with a dead-letter exchange) and logged with an error
// wrapping eventkit.ErrNotCloudEvent.
//
// On input, as the binding requires of receivers, headers named with the
// binding's own prefix "cloudEvents:" are read as well as "cloudEvents_",
// and values may be native AMQP types as well as canonical strings: a
// boolean is a Boolean, an integer of any width in the 32-bit range (or a
// float with an integral value) an Integer, a byte array Binary, a
// timestamp a Timestamp (the time attribute, or an extension); a byte
// array that is valid UTF-8 is accepted for the String attributes (id,
// source, type, subject, dataschema, specversion); a null header is an
// absent attribute; a datacontenttype header is used when the content-type
// property is absent (the property wins). Other types (decimal, table, array), a value of the
// wrong type for a context attribute, and an attribute given under both
// prefixes with different values are refused. Output stays canonical
// ("cloudEvents_" + name, string values).
//
// The in-flight bound is the channel prefetch (eventkit.WithBuffer, 100 by
// default). Nack requeues the message (after the nack's delay, which the
// subscription holds the message for); a nack whose error is
// eventkit.Permanent rejects it without requeueing, which dead-letters it when
// the queue has a dead-letter exchange (WithDeadLetterExchange), and with
// WithDeliveryLimit the broker dead-letters (or drops) a message after that
// many deliveries.
//
// The transport is built on package transport, which validates topics,
// patterns, events and options (an invalid option value makes Dial fail
// with an error wrapping eventkit.ErrInvalidOption), settles each message
// once, batches acks and stops gracefully: Shutdown(ctx) ends every
// subscription (requeueing what is unsettled, deleting private queues) and
// closes the connection within ctx; Close is Shutdown bounded by
// WithCloseTimeout. Its capabilities (eventkit.CapabilitiesOf) are
// wildcards, consumer groups, nack, nack with a delay, attempt counts,
// persistent group queues and pipelined batches; a new queue starts empty,
// so eventkit.FromStart is refused.
//
// The connection is re-established automatically after it is lost, with
// the exchange, queues, bindings and consumers declared again; publishes
// wait for it (until their context ends) and publish again what the broker
// had not confirmed.
package amqp
