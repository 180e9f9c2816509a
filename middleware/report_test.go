package middleware_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/middleware"
)

func TestReportOutcome(t *testing.T) {
	var nilReport *middleware.Report
	nilReport.SetOutcome(middleware.OutcomeDropped) // no-op, no panic
	nilReport.AddRetry()
	if o := nilReport.Final(nil); o != middleware.OutcomeOK {
		t.Fatalf("nil report Final(nil) = %q", o)
	}
	if middleware.ReportFromContext(context.Background()) != nil {
		t.Fatal("report in an empty context")
	}
	ctx, r := middleware.NewReportContext(context.Background())
	if middleware.ReportFromContext(ctx) != r {
		t.Fatal("ReportFromContext did not return the report")
	}
	r.SetOutcome(middleware.OutcomeDeadLettered)
	if r.Final(nil) != middleware.OutcomeDeadLettered || r.Final(errTransient) != middleware.OutcomeRetried {
		t.Fatalf("Final: %q, %q", r.Final(nil), r.Final(errTransient))
	}
}

func TestEnsureReportAndMarkMeasured(t *testing.T) {
	ctx, r := middleware.EnsureReport(context.Background())
	if r == nil || middleware.ReportFromContext(ctx) != r {
		t.Fatal("EnsureReport on an empty context: no report in the context it returns")
	}
	ctx2, r2 := middleware.EnsureReport(ctx)
	if ctx2 != ctx || r2 != r {
		t.Fatal("EnsureReport made a new report although the context carries one")
	}
	if !r.MarkMeasured() {
		t.Fatal("first MarkMeasured = false, want true")
	}
	if r.MarkMeasured() {
		t.Fatal("second MarkMeasured = true, want false")
	}
}
