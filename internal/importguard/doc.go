// Package importguard holds no code: its test checks the module's import
// graph against the design (docs/architecture.md, "Imports match the
// design"), so that one stray import cannot make every user of a store link
// an observability stack again.
//
// The test runs `go list -deps -json` once over the module and checks, for
// each rule, that a package's transitive dependencies include none of the
// modules the rule forbids; a failure names the offending package and the
// import chain that pulls it. The rules, in importguard_test.go:
//
//   - the root package pulls no driver, no observability library and no
//     other heavy module;
//   - the stores and transports (memory, postgres, sqlite, redis, nats,
//     kafka, amqp, mqtt, cehttp) pull no OpenTelemetry, Prometheus,
//     jsonschema, gobreaker, backoff or nats-server, and no driver but
//     their own (nats does not link the embedded server);
//   - the logic packages (dedup, topic, binding, es, outbox, cdc, saga,
//     middleware) pull no driver, and none of the heavy modules except
//     middleware's own backoff and rate limiter;
//   - each middleware subpackage (tracing, prom, breaker, schema),
//     es/esprom and nats/natsserver pull only their own heavy library;
//   - eventkittest (imported by third-party transports' tests) and the
//     driver layer (packages driver and transport) pull no driver and no
//     heavy library (the rules of those two are skipped while they do not
//     exist).
//
// A rule that the code cannot satisfy yet is listed as pending, with the
// reason: the test reports it (t.Log) without failing while it is broken,
// and fails once it holds, so that it is then made a normal rule.
//
// It is an ordinary test, run by `go test ./...` and scripts/test.sh:
//
//	go test ./internal/importguard
package importguard
