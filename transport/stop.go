package transport

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventkit/eventkit/driver"
)

// stopper runs a stop sequence once. Every caller waits for it, each
// bounded by its own context; the first caller gets its error.
type stopper struct {
	once sync.Once
	done chan struct{}
	err  error
}

// gate admits calls until it is closed, and counts the calls admitted
// that are not done yet.
type gate struct {
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // Done by each admitted call
}

// enter admits a call (in inflight until its Done), or reports false once
// the gate is closed.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inflight.Add(1)
	return true
}

// close admits no more calls.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func newStopper() stopper { return stopper{done: make(chan struct{})} }

// stop runs fn(ctx) in its own goroutine the first time, and waits until
// it returned or ctx ended. When ctx ends first, fn goes on (its calls are
// bounded by ctx, and the driver's by their own contract) and stop returns
// ctx's error.
func (s *stopper) stop(ctx context.Context, name string, fn func(context.Context) error) error {
	first := false
	s.once.Do(func() {
		first = true
		go func() {
			s.err = fn(ctx)
			close(s.done)
		}()
	})
	select {
	case <-s.done:
		if first {
			return s.err
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: stop: %w", name, context.Cause(ctx))
	}
}

// closeDriver shuts x down with ctx if it implements driver.Shutdowner,
// and closes it otherwise.
func closeDriver(ctx context.Context, x interface{ Close() error }) error {
	if sd, ok := x.(driver.Shutdowner); ok {
		return sd.Shutdown(ctx)
	}
	return x.Close()
}
