package driver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

func TestIsRetryable(t *testing.T) {
	boom := errors.New("connection reset")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{boom, true},
		{fmt.Errorf("read: %w", boom), true},
		{driver.Permanent(boom), false},
		{fmt.Errorf("read: %w", driver.Permanent(boom)), false},
		{eventkit.Permanent(boom), false},
		{fmt.Errorf("x: %w", eventkit.ErrClosed), false},
		{&eventkit.CapabilityError{Transport: "t", Op: "nack", Missing: eventkit.CapNack}, false},
		{eventkit.InvalidOption("x", "y"), false},
		{context.Canceled, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
	} {
		if got := driver.IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if driver.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if !errors.Is(driver.Permanent(boom), boom) {
		t.Error("Permanent does not wrap its error")
	}
}
