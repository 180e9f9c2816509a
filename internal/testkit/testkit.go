// Package testkit holds the helpers that eventkit's own tests share across
// packages, so that each is written once: polling for a condition with a
// deadline, and the per-broker set-ups of the transports' tests. It is
// imported by tests only.
package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails tb (naming what it
// waited for) if it does not hold within d. It never sleeps longer than a
// millisecond at a time: a test waits by polling with a deadline, not by a
// sleep that guesses how long things take.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}
