// Package nats is eventkit's NATS JetStream transport, with the dedup and
// checkpoint stores on JetStream key-value buckets. It does not link the
// NATS server: the embedded server that eventkit runs by default is in
// package nats/natsserver (natsserver.Run), and the same Transport code runs
// against it (Embedded.Connect gives in-process connections) and against a
// NATS cluster: only the *nats.Conn changes.
//
// Transport implements eventkit.Publisher and eventkit.Subscriber on
// package transport, which gives it what every transport guarantees
// (validation before anything is sent, eventkit.ErrClosed after Close,
// settle-once messages, subscriptions bound to their ctx, Shutdown(ctx)
// reporting every error). New(nc, ...) takes a connection the caller owns
// and does no I/O; Dial(ctx, url, ...) connects and makes the declared
// streams within ctx, and owns its connection. An invalid option value
// makes both fail with an error wrapping eventkit.ErrInvalidOption.
//
//   - Topics are NATS subjects, one to one; patterns use NATS wildcards
//     ("*" one token, ">" the rest). Every topic must fall in a stream:
//     declared with WithStream (created if missing, checked if present, and
//     never changed silently: a *StreamMismatchError unless
//     WithStreamUpdate), or made on first use per first token by
//     WithAutoStreams (the default when no stream is declared).
//   - Publish follows the CloudEvents NATS protocol binding: binary mode
//     (each attribute in a "ce-" header, percent-encoded, data as the
//     payload) or structured mode (WithMode(eventkit.Structured)). Publishes are
//     asynchronous with a bounded number awaiting their ack; Publish
//     returns when JetStream acked every event. The Nats-Msg-Id header
//     (DefaultMsgID: the event's id, source and topic) lets the stream's
//     duplicate window drop re-publishes.
//   - Subscribe uses pull consumers with explicit acks: a consumer group is
//     a durable consumer shared by its members; a subscription without
//     group has a consumer of its own. Nack and NackAfter are negative acks
//     (NakWithDelay), Message.Attempt is the delivery count, and
//     in-progress acks keep unsettled messages from being redelivered
//     while they wait in the buffer or in a handler (WithAckExtension).
//   - Message.Position is the message's stream sequence ("42"). A new
//     consumer starts at the next event, at the oldest (eventkit.FromStart),
//     at the first stored at or after a time (eventkit.StartAt:
//     DeliverByStartTime) or at a sequence (eventkit.StartAtPosition:
//     DeliverByStartSequence). Transport.Seek (eventkit.Seeker) replaces a
//     group's durable consumer with one that starts there; members
//     connected at the time see their consumer deleted, join the new one
//     and receive from the new point.
package nats
