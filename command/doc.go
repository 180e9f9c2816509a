// Package command is the command side of CQRS on eventkit transports.
//
// A command is a CloudEvent whose type names the command ("order.place")
// and whose data is its payload. A Handlers value holds exactly one handler
// per command type and is mounted on an eventkit.Router; a Client sends
// commands through any eventkit.Publisher:
//
//   - Send publishes the command to its topic and returns once the transport
//     has accepted it (durable, fire and forget: on a persistent transport
//     the command is handled even if no handler runs yet).
//   - Request publishes the command with a reply topic and waits for the
//     handler's reply, up to a timeout.
//
// # Topics
//
// A command of type T is published to the topic Prefix + "." + T (default
// prefix "commands"; characters that a topic token does not allow become
// '_'). Handlers.Mount subscribes one route to Prefix + ".>" in a consumer
// group (named after the prefix), so that every instance of a service
// shares the commands and a command of a type the service does not know
// gets an error reply rather than silence. A new group starts at the
// oldest command the transport kept, so commands sent before the service
// first ran are handled. Give each service its own prefix (WithPrefix) when
// several services handle commands on one transport. An event of a command
// type on another topic under the prefix (a dead letter "<topic>.dlq") is
// not a command and is ignored.
//
// On the memory bus, which keeps nothing for absent subscribers, start the
// router before sending. Package command/natsreply carries replies over
// core NATS, so that a JetStream deployment stores no replies.
//
// # Request and reply
//
// Each Client has its own reply topic, ReplyPrefix + "." + a random id
// (default prefix "replies"), subscribed without a group at the first
// Request. A request carries that topic in the "replyto" extension and a
// token unique to the call in "replytoken"; the reply carries the
// request's id in the "inreplyto" extension and the token back.
// Guarantees:
//
//   - A reply reaches only the Request call that published the command it
//     answers (same token and command id). A reply that names no waiting
//     call (it came after the timeout, after the caller's context ended,
//     twice because the command was redelivered, or to an earlier attempt
//     of a retry that reused the command id) is dropped and counted in
//     Stats().DroppedReplies.
//   - The requests waiting at once are bounded (WithMaxPending); beyond the
//     bound Request fails at once with ErrTooManyPending.
//   - When the caller's context ends, or the timeout (WithTimeout) passes,
//     the request stops waiting and its entry is removed. A timeout is
//     ErrTimeout; it does not mean the command did not run.
//   - An error the handler returns travels back as an *Error (with a code
//     and a message), distinct from a transport error (publishing failed,
//     wrapped as returned by the transport) and from ErrTimeout.
//
// # Handlers
//
// Handle and HandleReply register typed handlers: the data is decoded into
// the command's Go type (see eventkit.DecodeData) and, when the type has a
// Validate() error method, validated. A command that does not decode or
// validate is never retried: a request gets an *Error with CodeInvalid, and
// a sent command is rejected (acked, and published to WithRejectedTopic or
// logged). A handler's *Error, and a command of an unknown type, are
// likewise final; any other error of a sent command is returned to the
// Router, which redelivers it by its policy, and any error of a request is
// replied. A panic in a handler becomes an *Error with CodeInternal. Delivery is at least once: a
// handler may see a command twice and should be idempotent (the command id
// is the CloudEvent id, see EventFromContext).
//
// HandleAggregate runs a command against an aggregate of an es.Repository,
// retrying on a version conflict.
package command
