package binding

import (
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The remembered source must never stand in for another value, valid or
// not, and must be safe under concurrent decoding.
func TestSetSourceRemembersOnlyTheSame(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				for _, src := range []string{"urn:a", "https://example.com/b?x=1", "urn:a", "/relative/c"} {
					e := event.New()
					if err := Set(&e, "source", src); err != nil {
						t.Errorf("Set(source, %q): %v", src, err)
						return
					}
					if got := e.Source(); got != src {
						t.Errorf("source %q, want %q", got, src)
						return
					}
				}
				e := event.New()
				_ = Set(&e, "source", "urn:a")
				if err := Set(&e, "source", "http://[::1"); err == nil {
					t.Error("an invalid source was accepted after a valid one was remembered")
					return
				}
			}
		}()
	}
	wg.Wait()
}
