// Package middleware holds eventkit's reliability middleware: retry, dead
// letter, timeout, deduplication, rate limit, recover and correlation, and
// the per-message Report through which they tell an outer metrics or
// tracing middleware how a message ended. It imports no driver and no
// observability library: stores and publishers are the interfaces of the
// core packages (dedup.Store, eventkit.Publisher), and the middleware that
// need a heavy library live in subpackages that only their users link:
//
//	middleware/tracing   OpenTelemetry spans (tracing.Middleware, tracing.Publisher)
//	middleware/prom      Prometheus metrics (prom.New, (*prom.Metrics).Middleware)
//	middleware/breaker   circuit breaker on gobreaker (breaker.Middleware)
//	middleware/schema    JSON Schema validation (schema.Middleware)
//
// Each middleware states its decision as the error it returns, which the
// Router turns into a settlement: nil acks the message, an error nacks it,
// an eventkit.RetryAfter error nacks it with a delay. The recommended order,
// outermost first:
//
//	r.Use(
//		tracing.Middleware(),        // consumer span, child of the producer's span
//		metrics.Middleware(),        // metrics, _ := prom.New(): final outcome and duration
//		middleware.DeadLetter(pub),  // takes what Retry gives up on; acks the original
//		middleware.Retry(),          // backoff with jitter; in place or by nack
//		middleware.Timeout(d),       // bounds each attempt
//		middleware.Recover(),        // a panic becomes an error the others see
//	)
//
// DeadLetter wraps Retry: Retry marks the error it gives up on
// (*RetryError), and DeadLetter dead-letters exactly those and permanent
// errors. Middleware tell an outer metrics middleware how a message ended
// through the per-message Report in the context (EnsureReport,
// ReportFromContext). See docs/middleware.md for each middleware's
// guarantees and the tests that prove them.
package middleware
