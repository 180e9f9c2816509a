// Package eventkit is the core of eventkit: a toolkit for event-driven systems
// built on CloudEvents.
//
// The event type everywhere is event.Event from
// github.com/cloudevents/sdk-go/v2; eventkit defines no event struct of its
// own. This package holds the small interfaces that every transport and
// every piece of logic shares:
//
//   - Message: an event in flight, with Ack, Nack, the delivery attempt and
//     the topic it came from.
//   - Publisher and Subscriber: publish events to a topic, and subscribe to a
//     topic pattern (see package topic), optionally as a named consumer group.
//   - Handler, HandlerFunc and Middleware, in the shape of net/http.
//   - Router: binds topic patterns to handlers, with middleware, bounded
//     concurrency, ordering per key, ack on success and nack on error, and a
//     graceful shutdown.
//   - Typed: a handler that receives the event's data decoded into a Go type.
//   - ValidateEvent, UnmarshalEvent and UnmarshalBatch: strict CloudEvents
//     validation and JSON-format decoding that every transport uses.
//
// Transports live in the packages named after their technology (memory,
// nats, kafka, redis, amqp, mqtt, postgres, cehttp); each passes the
// conformance suite in package eventkittest.
package eventkit
