// Package kafka is eventkit's Apache Kafka transport, built on franz-go
// (github.com/twmb/franz-go: kgo for the client, kadm for administration).
//
// Dial returns a Transport, which implements eventkit.Publisher and
// eventkit.Subscriber on the driver layer (package transport builds them on
// this package's driver): topics, patterns and events are validated before
// anything is sent, Publish and Subscribe return eventkit.ErrClosed after
// Close, a message is settled once, a subscription ends with its context,
// and Shutdown(ctx) bounds the stop.
//
// Events travel by the CloudEvents Kafka protocol binding: binary mode by
// default (attributes in "ce_" headers, datacontenttype in the
// "content-type" header, data as the record value), structured mode (the
// JSON event format as the value) on request with
// WithMode(eventkit.Structured). The record key is the event's
// eventkit.EventKey (the "partitionkey" extension, the binding's Key
// Mapper, else the subject), so that events of one key land on one
// partition and keep their order; the extension itself is kept in the
// headers.
//
// Publishing uses franz-go's idempotent producer. Publish returns when the
// broker acknowledged every record; PublishAsync bounds the records in
// flight and reports through a callback.
//
// Subscriptions are Kafka consumer groups (a subscription without
// eventkit.WithGroup gets a unique ephemeral group of its own). Records of a
// partition are delivered in offset order, partitions concurrently; the
// offset committed for a partition never passes a record whose handling has
// not finished (acked). A nacked record is delivered again in process after
// the nack's delay, with Message.Attempt incremented, and holds the
// partition's commit back until it is acked. When a rebalance revokes a
// partition, the subscription stops delivering it, waits (up to
// WithRevokeTimeout) until the messages of that partition it has handed out
// (those taken, and those waiting to be taken: about one batch of
// eventkit.WithBuffer messages, or up to two batches of
// driver.DefaultMaxBatch without it) are settled, commits, and only then
// gives the partition up.
//
// A new group starts at the end offsets, at the start (eventkit.FromStart),
// at the first records at or after a time (eventkit.StartAt, by the
// records' timestamps) or at positions (eventkit.StartAtPosition).
// Message.Position is "<partition>:<offset>"; StartAtPosition takes a
// comma-separated list of them, partitions not listed starting at their
// start (see Transport.Subscribe). Transport.Seek (eventkit.Seeker) commits
// such offsets for an existing group, which must have no member: Kafka
// refuses it otherwise (ErrGroupHasMembers).
//
// Transactor is the exactly-once consume-transform-produce helper on
// franz-go's GroupTransactSession: the events a handler publishes and the
// input offsets are committed in one Kafka transaction.
// It stays beside the driver layer: its unit of settlement is a transaction
// over a batch of records and the handler's outputs, not a message.
//
// See docs/transports.md (Kafka section) for the guarantees and the tests that prove
// them.
package kafka
