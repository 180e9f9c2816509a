// Package middleware holds eventkit's reliability and observability
// middleware: retry, dead letter, timeout, deduplication, circuit breaker,
// rate limit, recover, correlation, schema validation, tracing and metrics.
// It imports no driver: stores and publishers are the interfaces of the
// core packages.
package middleware
