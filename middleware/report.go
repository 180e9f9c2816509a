package middleware

import "context"

// Outcome is what became of one handled message, as the metrics report it.
type Outcome string

// The outcomes of a handled message.
const (
	// OutcomeOK: the handler succeeded (possibly after retries in place);
	// the message is acked.
	OutcomeOK Outcome = "ok"
	// OutcomeRetried: the chain returned an error; the Router nacks the
	// message and the transport redelivers it (after a delay for a
	// RetryAfter error).
	OutcomeRetried Outcome = "retried"
	// OutcomeDeadLettered: the message was published to its dead-letter
	// topic and the original acked.
	OutcomeDeadLettered Outcome = "dead-lettered"
	// OutcomeDropped: the message was acked without being handled, for
	// example a duplicate that Dedup skipped.
	OutcomeDropped Outcome = "dropped"
)

// Report is the per-message record that middleware fill in so that an outer
// middleware (prom.Metrics) can tell how the handling ended. Only errors travel
// up a middleware chain, and a dead-lettered or skipped message returns nil
// like a handled one; the Report carries the difference.
//
// The outermost middleware that wants a report (tracing.Middleware and
// prom's Metrics do) creates it with EnsureReport, which reuses the one
// already in the context; inner middleware find it with ReportFromContext and record into
// it. With no report in the context, ReportFromContext returns
// nil and the recording methods do nothing. A Report belongs to the
// goroutine handling its message: middleware must not record into it from
// other goroutines.
type Report struct {
	// Outcome is set by middleware that end the handling without an error
	// in a way other than success (DeadLetter, Dedup). Empty means: decided
	// by the error returned (nil: OutcomeOK, else OutcomeRetried).
	Outcome Outcome
	// Retries counts the retries made in place (Retry without nack mode).
	Retries int
	// DeadLettered is set when the message was published to the
	// dead-letter topic.
	DeadLettered bool

	// measured is set once a metrics middleware counts this report
	// (MarkMeasured), so that a second one further in makes its own.
	measured bool
}

// SetOutcome records o. It is a no-op on a nil Report.
func (r *Report) SetOutcome(o Outcome) {
	if r != nil {
		r.Outcome = o
	}
}

// AddRetry counts one retry in place. It is a no-op on a nil Report.
func (r *Report) AddRetry() {
	if r != nil {
		r.Retries++
	}
}

// Final returns the outcome of a handling that returned err.
func (r *Report) Final(err error) Outcome {
	if err != nil {
		return OutcomeRetried
	}
	if r != nil && r.Outcome != "" {
		return r.Outcome
	}
	return OutcomeOK
}

type reportKey struct{}

// reportContext carries a Report in one allocation (a context.WithValue
// and a separate Report would take two).
type reportContext struct {
	context.Context
	r Report
}

func (c *reportContext) Value(key any) any {
	if _, ok := key.(reportKey); ok {
		return &c.r
	}
	return c.Context.Value(key)
}

// NewReportContext returns a context carrying a new, empty Report.
func NewReportContext(ctx context.Context) (context.Context, *Report) {
	c := &reportContext{Context: ctx}
	return c, &c.r
}

// ReportFromContext returns the Report of the message handled with ctx, or
// nil if no middleware asked for one.
func ReportFromContext(ctx context.Context) *Report {
	r, _ := ctx.Value(reportKey{}).(*Report)
	return r
}

// EnsureReport returns ctx and its Report if it carries one, else a
// context with a new Report (one allocation, shared by the middleware that
// want a report: tracing outside prom reads the outcome prom sees).
func EnsureReport(ctx context.Context) (context.Context, *Report) {
	if r := ReportFromContext(ctx); r != nil {
		return ctx, r
	}
	return NewReportContext(ctx)
}

// MarkMeasured records that a metrics middleware counts this report, and
// reports whether none did before. A metrics middleware that gets false
// (another one outside counts this report) makes its own report with
// NewReportContext, so that each counts the handling it wraps once.
func (r *Report) MarkMeasured() bool {
	first := !r.measured
	r.measured = true
	return first
}
