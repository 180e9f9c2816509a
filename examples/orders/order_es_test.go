package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunEventSourced(t *testing.T) {
	var out bytes.Buffer
	if err := runEventSourced(context.Background(), &out); err != nil {
		t.Fatalf("runEventSourced: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"stale save of order-o-1 rejected: expected version 4, actual 5",
		"ada  2 shipped order(s),    63.60",
		"dee  1 shipped order(s),     8.00",
		"revenue 96.60, cancelled orders 1",
		"order o-2: cancelled",
		"order o-5: shipped   total     8.00 (version 5)",
		"lag 0",
		"two clerks added tea and cake at once → version 3, total 8.00",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
