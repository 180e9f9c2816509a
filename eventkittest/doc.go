// Package eventkittest holds eventkit's conformance suites and test helpers,
// in the manner of testing/fstest: an implementation calls the suite from
// its own test.
//
//   - TestTransport: every Publisher/Subscriber pair (the memory bus, nats,
//     kafka, redis, amqp, mqtt, postgres, cehttp egress) passes it with the
//     Features it claims; a claim that is not tested is not made.
//     Whatever it claims, each delivery must carry its own event: a handler's
//     change is seen by no other subscription, not by the publisher and not
//     by a redelivery (DeliveryIsolation, RedeliveryCarriesOriginal).
//   - Helpers for tests that need a server: ServerAddr reads the address
//     from an environment variable with a local default, and skips the test
//     when the server does not answer, except under CI=true, where it fails.
//   - StartChild, for crash tests: it re-executes the test binary as a child
//     process, waits for the marker lines the child prints, and kills it.
//
// Suites for the other interfaces live here too: TestEventStore,
// TestSnapshotStore, TestCheckpointStore, TestDedupStore, and
// TestOutboxStore for outbox stores (with relays on top), with their
// helpers (Migrated, RunRelay, RecordingPublisher, WaitFor).
package eventkittest
