// Package pulsar is the Apache Pulsar transport (on
// github.com/apache/pulsar-client-go), built on package transport's driver
// layer.
//
// Topics: an eventkit topic "orders.created" is the persistent Pulsar topic
// "persistent://<tenant>/<namespace>/orders.created"; the tenant and
// namespace are "public" and "default" unless WithTenant and WithNamespace
// say otherwise, so that one Pulsar cluster can hold the events of several
// applications apart. Events are written in the CloudEvents JSON format
// (structured mode; content type application/cloudevents+json in the
// message's "content-type" property); the event's key (eventkit.EventKey),
// or its id when it has none, is the message key.
//
// Guarantees:
//   - Publish returns nil only when the broker stored every event of the
//     call (each producer send acknowledged).
//   - A subscription with a group (eventkit.WithGroup) is a durable
//     Key_Shared subscription of that name: members share the events, and
//     events of one key go to one member at a time, in the order they were
//     published. Its position is kept by the broker: a group that subscribes
//     again continues where it stopped, and messages taken but never
//     settled are delivered again.
//   - A subscription without a group is a private, exclusive subscription,
//     removed when it closes.
//   - Message.Position is the message id, "<ledger>:<entry>" (and
//     ":<batch index>" for a message of a batch). eventkit.StartAt seeks
//     the new subscription to the first message published at or after the
//     time (SeekByTime), eventkit.StartAtPosition to a position, that
//     message included. Pulsar's client cannot tell a new subscription from
//     an existing one: a member that subscribes to a group with StartAt or
//     StartAtPosition moves the group there; members that resume subscribe
//     without them.
//   - Transport.Seek (eventkit.Seeker) moves a group with a consumer of
//     its own; the broker disconnects the members connected at the time,
//     which reconnect and receive from the new point.
//   - Nack redelivers (after the consumer's nack delay, WithNackDelay);
//     Message.Attempt counts the deliveries. With WithDeadLetter, an event
//     delivered that many times is moved to the dead-letter topic by the
//     client instead of being delivered again.
//
// Not offered: wildcard patterns (Pulsar's regex subscriptions discover new
// topics only periodically, so an event published just after Subscribe
// could be missed), a per-message nack delay, and binary mode.
package pulsar
