// Package middleware holds eventkit's reliability and observability
// middleware: retry, dead letter, timeout, deduplication, circuit breaker,
// rate limit, recover, correlation, schema validation, tracing and metrics.
// It imports no driver: stores and publishers are the interfaces of the
// core packages.
//
// Each middleware states its decision as the error it returns, which the
// Router turns into a settlement: nil acks the message, an error nacks it,
// an eventkit.RetryAfter error nacks it with a delay. The recommended order,
// outermost first:
//
//	r.Use(
//		middleware.Tracing(),        // consumer span, child of the producer's span
//		metrics.Middleware(),        // final outcome and duration
//		middleware.DeadLetter(pub),  // takes what Retry gives up on; acks the original
//		middleware.Retry(),          // backoff with jitter; in place or by nack
//		middleware.Timeout(d),       // bounds each attempt
//		middleware.Recover(),        // a panic becomes an error the others see
//	)
//
// DeadLetter wraps Retry: Retry marks the error it gives up on
// (*RetryError), and DeadLetter dead-letters exactly those and permanent
// errors. Middleware tell an outer Metrics how a message ended through the
// per-message Report in the context (NewReportContext, ReportFromContext).
// See docs/middleware.md for each middleware's guarantees and the tests
// that prove them.
package middleware
