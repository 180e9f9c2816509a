package middleware

import (
	"context"
	"sync"
	"time"
)

// deadlineCtx is the context Timeout gives the next handler: the same
// observable behaviour as context.WithDeadline (Deadline, Done closed at the
// deadline or when the parent ends, Err, Cause, cancellation of derived
// contexts), but lazy: the timer and the watch on the parent start only when
// something asks for Done (a select on it, or a context derived with
// context.WithCancel and the like). Err consults the clock and the parent
// directly, so a handler that only checks ctx.Err() sees the deadline
// without any timer. Most handlers finish long before their deadline and
// never wait on Done; for them Timeout costs one small allocation instead of
// a runtime timer, a cancel function and a registration with the parent.
type deadlineCtx struct {
	context.Context // the parent
	deadline        time.Time

	mu         sync.Mutex
	done       chan struct{} // made by Done
	err        error
	timer      *time.Timer
	stopParent func() bool
	afters     map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchLocked()
	return c.done
}

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	return c.err
}

// Value hides the parent's cancelCtx from context.Cause and from the
// context package's cancellation fast path (which would otherwise attach
// children to the parent rather than to c): Cause(c) then returns c.Err(),
// and children register through AfterFunc.
func (c *deadlineCtx) Value(key any) any {
	if key == cancelCtxKey {
		return nil
	}
	return c.Context.Value(key)
}

// AfterFunc makes the context package propagate the end of c to contexts
// derived from it without a goroutine per child (the afterFuncer interface
// of package context).
func (c *deadlineCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchLocked()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if c.afters == nil {
		c.afters = make(map[*afterFunc]struct{})
	}
	c.afters[a] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[a]
		delete(c.afters, a)
		return ok
	}
}

// watchLocked makes the done channel and starts the timer and the watch on
// the parent, once.
func (c *deadlineCtx) watchLocked() {
	if c.done != nil {
		return
	}
	c.done = make(chan struct{})
	c.checkLocked()
	if c.err != nil {
		close(c.done)
		return
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	if c.Context.Done() != nil {
		c.stopParent = context.AfterFunc(c.Context, func() { c.cancel(c.Context.Err()) })
	}
}

// checkLocked ends c if its parent has ended or its deadline has passed.
func (c *deadlineCtx) checkLocked() {
	if c.err != nil {
		return
	}
	if err := c.Context.Err(); err != nil {
		c.endLocked(err)
	} else if !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

func (c *deadlineCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *deadlineCtx) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
	for a := range c.afters {
		go a.f()
	}
	c.afters = nil
}

// cancelCtxKey is the key by which package context finds a context's
// underlying cancelCtx (context.Cause and propagateCancel look it up with
// Value). It is unexported, so it is learnt once from a probe. Should a
// future Go look it up differently, the probe learns nothing useful and
// deadlineCtx still works: Cause(c) would then report the parent's cause.
var cancelCtxKey = func() (key any) {
	p := &keyProbe{Context: context.Background()}
	_ = context.Cause(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}

// withDeadline returns a context that ends at deadline; its cancel method
// ends it early and releases its timer.
func withDeadline(parent context.Context, deadline time.Time) *deadlineCtx {
	return &deadlineCtx{Context: parent, deadline: deadline}
}
