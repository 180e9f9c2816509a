package eventkittest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
)

// fatalTB records the message of Fatalf and ends its goroutine, as
// testing.T's Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// WaitFor returns once cond holds, having polled it until then.
func TestWaitForReturnsWhenCondHolds(t *testing.T) {
	calls := 0
	eventkittest.WaitFor(t, 10*time.Second, "the third call", func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

// WaitFor fails, naming what it waited for and the timeout, when cond does
// not hold in time; it polls more than once meanwhile.
func TestWaitForFailsAfterTimeout(t *testing.T) {
	tb := &fatalTB{TB: t}
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventkittest.WaitFor(tb, 50*time.Millisecond, "never", func() bool { calls++; return false })
	}()
	<-done
	if !strings.Contains(tb.msg, "never") || !strings.Contains(tb.msg, "50ms") {
		t.Fatalf("failure message %q, want it to name what and the timeout", tb.msg)
	}
	if calls < 2 {
		t.Fatalf("cond polled %d times in 50ms", calls)
	}
}

// NewEvents numbers its events from 0 after the prefix, each valid.
func TestNewEvents(t *testing.T) {
	evs := eventkittest.NewEvents("b", 3)
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, e := range evs {
		if want := fmt.Sprintf("b-%d", i); e.ID() != want {
			t.Errorf("event %d has id %q, want %q", i, e.ID(), want)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
}
