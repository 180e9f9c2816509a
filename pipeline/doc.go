// Package pipeline runs multi-stage event flows in the process: sources
// (eventkit subscriptions) feed stages connected by bounded queues, each
// stage with its own pool of workers and its own middleware, down to sinks
// (a Publisher, a function). It is driver-free: any transport is a source
// or a sink, and the middleware are those of package middleware.
//
// What a pipeline guarantees:
//
//   - At least once. A source message is acked only after every event
//     that descends from it (through maps, splits, fan-out branches and
//     batches) was settled by a sink, or ended by a filter, a route without
//     a matching case or a middleware that acked it (middleware.DeadLetter
//     after keeping it). A failure anywhere nacks the source message (once,
//     with the error's eventkit.RetryAfter delay or the pipeline's
//     redelivery backoff), so a durable transport redelivers it and the
//     whole flow runs again for it: outputs of the branches that had
//     succeeded are published again (duplicates, never losses).
//   - Bounded memory and back-pressure to the source. Every queue has a
//     bound in events (Queue, WithQueue), and each source holds at most
//     WithMaxInFlight messages taken and not settled. A full pipeline stops
//     taking messages from its subscription, so the transport stops
//     fetching once its own bounded buffer is full. Stats shows it: queue
//     depths and the time spent blocked, per stage and per source.
//   - Contracts between stages. A stage declares what it consumes and
//     produces (Consumes, Produces; Typed declares both); Build refuses a
//     pipeline whose declarations do not match (type, dataschema), and an
//     event that breaks a declaration at run time fails with a permanent
//     *ContractError.
//   - Order per key when asked. A stage with OrderedByKey handles the
//     events of one key (eventkit.EventKey) one after another in arrival
//     order, whatever its Workers; with every stage ordered, a source that
//     delivers a key in order yields each key's outputs in that order.
//   - Graceful drain. Shutdown (or the end of Run's context) stops taking
//     messages, lets every event taken flow to the end (open batches are
//     flushed) and settles its source message, then closes the
//     subscriptions; if its context ends first, the stages' context is
//     cancelled and what is not settled is nacked or left unsettled: a
//     durable transport redelivers it.
//
// Events move between stages in batches: a sender hands over what it has
// for a stage (up to a quarter of the stage's queue bound, at most 64
// events) in one channel operation, without waiting for a batch to fill,
// and a worker handles the events of a batch one by one, each with its own
// middleware, outcome and source message. The guarantees above hold per
// event.
//
// Each delivery to a fan-out branch carries its own copy of the event.
// A panic in a stage function becomes a permanent *eventkit.PanicError.
package pipeline
