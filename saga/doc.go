// Package saga runs process managers (orchestrated sagas) on CloudEvents:
// long-running, stateful workflows that react to events, emit commands and
// events, and undo what they did, in reverse order, when a step fails or a
// deadline passes.
//
// A Saga[S] has a typed state S (stored as JSON), a name, and steps: each
// step is triggered by one event type and may start an instance. Events are
// correlated to an instance by an attribute: the correlationid extension by
// default, the subject (CorrelateBySubject), another extension
// (CorrelateByExtension) or any function (CorrelateBy). Feed the saga
// events with its Handler on an eventkit.Router, or call HandleEvent; run
// its timer loop with Run.
//
// # Guarantees
//
// The package holds no driver: a Store keeps the instances (memory,
// sqlite, postgres and nats implement it, and eventkittest.TestSagaStore
// checks any implementation). What it guarantees, with any conforming
// store:
//
//   - Atomic steps. A step's state change, its history entry, the id of the
//     event that triggered it and the messages it emitted (Context.Emit) are
//     saved in one store transaction; the messages go to the store's outbox
//     and an outbox.Relay publishes them afterwards, at least once, with
//     stable event ids. A crash before the commit leaves no trace: the
//     event is redelivered and the step runs again. A step must therefore
//     have no effect other than its state and the messages it emits.
//   - Once per instance. Each event id is handled at most once per
//     instance, even when the transport redelivers it: the ids are kept
//     with the instance.
//   - Optimistic concurrency. Every save names the version it read; a
//     concurrent change makes it fail with ErrConflict and the event is
//     handled again on the new state (up to WithConflictRetries times, then
//     HandleEvent returns the error so that the message is redelivered).
//   - Compensation. When a step returns an error (other than a Transient
//     one) or the instance's deadline passes, the instance turns to
//     compensating and the compensations of its completed steps run in
//     reverse order, one store transaction each; each compensation's
//     messages are committed with the removal of its step, so each runs its
//     effect exactly once as the store sees it, also across crashes.
//   - Durable timers. Deadlines, and the compensations still to run, are
//     stored with the instance (its wake time); Run polls the store for due
//     instances, so they fire after a crash, on any process that runs Run.
//
// Instances are listed and inspected, with their state and history, by
// Saga.Get and Saga.List. Metrics reach a Metrics implementation
// (WithMetrics); the package imports no metrics library.
package saga
