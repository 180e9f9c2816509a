package eventkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/eventkit/eventkit/topic"
)

// Router binds topic patterns to handlers. For each route it subscribes to
// the pattern, passes each message through the router's and the route's
// middleware to the handler, acks the message when the handler returns nil
// and nacks it when the handler returns an error (with the delay of a
// *RetryAfterError, if the error carries one). A handler that settles the
// message itself is left alone.
//
// Shutdown is graceful: the router stops taking messages, lets the handlers
// in flight finish (bounded by the context given to Shutdown, after which
// their context is cancelled), then closes its subscriptions.
type Router struct {
	sub             Subscriber
	logger          *slog.Logger
	shutdownTimeout time.Duration

	redeliveryInitial time.Duration
	redeliveryMax     time.Duration

	mu      sync.Mutex
	mw      []Middleware
	routes  []*route
	errs    []error
	started bool

	stopTake       chan struct{}
	stopOnce       sync.Once
	running        chan struct{}
	done           chan struct{}
	waited         chan struct{} // closed when Start's goroutine (or a failed Start) has ended
	waitErr        error         // written before waited is closed
	failed         chan error
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
	workers        sync.WaitGroup
	shutdownErr    error
	shutdownOnce   sync.Once
}

type route struct {
	info        RouteInfo
	h           Handler
	mw          []Middleware
	concurrency int
	ordered     bool
	subOpts     []SubscribeOption
	sub         Subscription
	ctx         context.Context

	// batch routes (HandleBatch)
	batch     bool
	bh        BatchHandler
	batchSize int
	batchWait time.Duration
	batchOpt  bool // BatchSize or BatchWait was given
}

// RouteInfo describes the route handling a message; middleware reads it with
// RouteFromContext (for metric labels and logs).
type RouteInfo struct {
	Name    string // the route's name (RouteName), else its pattern
	Pattern string
	Group   string
}

type routeKey struct{}

// RouteFromContext returns the RouteInfo of the route whose handler runs
// with ctx.
func RouteFromContext(ctx context.Context) (RouteInfo, bool) {
	ri, ok := ctx.Value(routeKey{}).(*RouteInfo)
	if !ok {
		return RouteInfo{}, false
	}
	return *ri, true
}

// RouterOption configures a Router.
type RouterOption func(*Router)

// WithLogger sets the router's logger (slog.Default() otherwise).
func WithLogger(l *slog.Logger) RouterOption { return func(r *Router) { r.logger = l } }

// WithShutdownTimeout bounds the graceful shutdown that Start and Run perform when
// its context ends (default 30s).
func WithShutdownTimeout(d time.Duration) RouterOption {
	return func(r *Router) { r.shutdownTimeout = d }
}

// RouteOption configures one route.
type RouteOption func(*route)

// RouteName names the route (default: its pattern).
func RouteName(name string) RouteOption { return func(rt *route) { rt.info.Name = name } }

// RouteGroup subscribes the route as a member of a consumer group.
func RouteGroup(name string) RouteOption {
	return func(rt *route) {
		rt.info.Group = name
		rt.subOpts = append(rt.subOpts, WithGroup(name))
	}
}

// Concurrency sets how many messages of the route are handled at once
// (default 1).
func Concurrency(n int) RouteOption { return func(rt *route) { rt.concurrency = n } }

// OrderedByKey keeps the order of messages that share a key (EventKey: the
// partitionkey extension, else the subject) when Concurrency is above 1:
// messages of one key are handled one after another, in delivery order.
func OrderedByKey() RouteOption { return func(rt *route) { rt.ordered = true } }

// RouteMiddleware adds middleware to this route only; it runs inside the
// router-wide middleware.
func RouteMiddleware(mw ...Middleware) RouteOption {
	return func(rt *route) { rt.mw = append(rt.mw, mw...) }
}

// RouteSubscribeOptions passes options to the route's Subscribe call.
func RouteSubscribeOptions(opts ...SubscribeOption) RouteOption {
	return func(rt *route) { rt.subOpts = append(rt.subOpts, opts...) }
}

// NewRouter returns a router that subscribes through sub.
func NewRouter(sub Subscriber, opts ...RouterOption) *Router {
	r := &Router{
		sub:               sub,
		logger:            slog.Default(),
		shutdownTimeout:   30 * time.Second,
		redeliveryInitial: DefaultRedeliveryInitial,
		redeliveryMax:     DefaultRedeliveryMax,
		stopTake:          make(chan struct{}),
		running:           make(chan struct{}),
		done:              make(chan struct{}),
		waited:            make(chan struct{}),
		failed:            make(chan error, 1),
	}
	for _, o := range opts {
		o(r)
	}
	r.handlerCtx, r.cancelHandlers = context.WithCancel(context.Background())
	return r
}

// Use adds router-wide middleware; the first added is the outermost. It must
// be called before Start (or Run).
func (r *Router) Use(mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mw = append(r.mw, mw...)
}

// Handle binds pattern to h. It returns an error for an invalid pattern or
// option, or after Start (or Run); Start and Run report the same errors.
func (r *Router) Handle(pattern string, h Handler, opts ...RouteOption) error {
	rt := newRoute(pattern, opts, func(rt *route) { rt.h = h })
	var err error
	switch {
	case h == nil:
		err = errors.New("nil handler")
	case rt.batchOpt:
		err = InvalidOption("BatchSize/BatchWait", "only for a batch route (HandleBatch)")
	}
	return r.add(rt, err)
}

// newRoute returns a route of pattern with the defaults, then what init
// sets, then the options applied.
func newRoute(pattern string, opts []RouteOption, init func(*route)) *route {
	rt := &route{info: RouteInfo{Pattern: pattern, Name: pattern}, concurrency: 1}
	init(rt)
	for _, o := range opts {
		o(rt)
	}
	return rt
}

// add checks what every route needs and adds rt, or records err (the
// error of the route's own checks, or nil).
func (r *Router) add(rt *route, err error) error {
	pattern := rt.info.Pattern
	switch {
	case err != nil:
		err = fmt.Errorf("eventkit: route %q: %w", pattern, err)
	case rt.concurrency < 1:
		err = fmt.Errorf("eventkit: route %q: concurrency must be at least 1, got %d", pattern, rt.concurrency)
	default:
		if perr := topic.ValidatePattern(pattern); perr != nil {
			err = fmt.Errorf("eventkit: route: %w", perr)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("eventkit: Handle called after Start or Run")
	}
	if err != nil {
		r.errs = append(r.errs, err)
		return err
	}
	r.routes = append(r.routes, rt)
	return nil
}

// HandleFunc binds pattern to a handler function.
func (r *Router) HandleFunc(pattern string, fn func(context.Context, *Message) error, opts ...RouteOption) error {
	return r.Handle(pattern, HandlerFunc(fn), opts...)
}

// Running is closed once Start (or Run) has subscribed every route.
func (r *Router) Running() <-chan struct{} { return r.running }

// Done is closed when the router has shut down.
func (r *Router) Done() <-chan struct{} { return r.done }

// Start subscribes every route and starts handling messages in the
// background. It returns once every route is subscribed, so that an event
// published after Start returns reaches the routes even on a transport that
// keeps nothing for absent subscribers (such as the memory bus); or it
// returns the first error: a route that could not be set up or a
// subscription that failed (the router is then shut down, and Wait returns
// the same error).
//
// The router then runs until ctx ends or Shutdown is called; when ctx ends
// it shuts down gracefully, bounded by the shutdown timeout
// (WithShutdownTimeout). Wait waits for that end. Start may be called once.
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("eventkit: Router already started (Start or Run) or shut down")
	}
	r.started = true
	routes, mw, errs := r.routes, r.mw, r.errs
	r.mu.Unlock()
	fail := func(err error) error {
		r.waitErr = err
		close(r.waited)
		return err
	}
	if len(errs) > 0 {
		r.finish(nil)
		return fail(errors.Join(errs...))
	}
	if len(routes) == 0 {
		r.finish(nil)
		return fail(errors.New("eventkit: router has no routes"))
	}
	for _, rt := range routes {
		if !rt.batch {
			all := make([]Middleware, 0, len(mw)+len(rt.mw))
			all = append(append(all, mw...), rt.mw...)
			// The handler's panics are recovered innermost, so that every
			// middleware sees a permanent *PanicError, whatever its order.
			rt.h = Chain(all...)(recoverPanics(rt.h))
		}
		info := rt.info
		rt.ctx = context.WithValue(r.handlerCtx, routeKey{}, &info)
		sub, err := r.sub.Subscribe(r.handlerCtx, rt.info.Pattern, rt.subOpts...)
		if err != nil {
			r.closeSubs(routes)
			r.finish(nil)
			return fail(fmt.Errorf("eventkit: subscribe route %q: %w", rt.info.Name, err))
		}
		rt.sub = sub
	}
	for _, rt := range routes {
		r.start(rt)
	}
	close(r.running)
	go func() {
		r.waitErr = r.run(ctx, routes)
		close(r.waited)
	}()
	return nil
}

// Wait waits until the router started by Start has shut down (its context
// ended, Shutdown was called, or a subscription failed) and returns what Run
// would return: nil, the error of a failed subscription, or the error of a
// shutdown that did not finish in time. Wait before Start returns an error.
// It may be called more than once, from any goroutine.
func (r *Router) Wait() error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return errors.New("eventkit: Router.Wait called before Start")
	}
	<-r.waited
	return r.waitErr
}

// Run is Start followed by Wait: it subscribes every route and handles
// messages until ctx ends or Shutdown is called; then it shuts down
// gracefully (bounded by the shutdown timeout when ctx ended) and returns.
// It returns an error if a route could not be set up, if a subscription
// failed, or if the shutdown did not finish in time. Prefer Start when the
// same goroutine publishes afterwards: Run gives no point at which the
// routes are known to be subscribed (but Running).
func (r *Router) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	return r.Wait()
}

func (r *Router) run(ctx context.Context, routes []*route) error {
	var runErr error
	select {
	case <-ctx.Done():
	case <-r.stopTake:
		// Shutdown was called: it shuts the router down, bounded by its
		// own ctx. Starting the shutdown here too (with the shutdown
		// timeout) could win the race for shutdownOnce, and Shutdown's
		// deadline would then not cancel the handlers.
		<-r.done
		return r.shutdownErr
	case runErr = <-r.failed:
	}
	sctx, cancel := context.WithTimeout(context.Background(), r.shutdownTimeout)
	defer cancel()
	err := r.shutdown(sctx, routes)
	<-r.done
	return errors.Join(runErr, err)
}

// Shutdown stops the router gracefully: no new message is taken, handlers in
// flight finish (until ctx ends, when their context is cancelled), then the
// subscriptions are closed. It returns ctx's error if the handlers did not
// finish in time. It is safe to call more than once and before Start.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	started, routes := r.started, r.routes
	r.started = true
	r.mu.Unlock()
	if !started {
		r.stop()
		r.finish(nil)
		close(r.waited)
		return nil
	}
	r.stop()
	select {
	case <-r.running:
	case <-r.done:
		return r.shutdownErr
	}
	err := r.shutdown(ctx, routes)
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func (r *Router) stop() { r.stopOnce.Do(func() { close(r.stopTake) }) }

func (r *Router) shutdown(ctx context.Context, routes []*route) error {
	var err error
	r.shutdownOnce.Do(func() {
		r.stop()
		finished := make(chan struct{})
		go func() { r.workers.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-ctx.Done():
			r.cancelHandlers()
			err = fmt.Errorf("eventkit: router shutdown: handlers still running: %w", ctx.Err())
			r.logger.Warn("eventkit: router shutdown timed out; handlers cancelled")
		}
		r.closeSubs(routes)
		if err == nil {
			r.cancelHandlers()
		}
		r.finish(err)
	})
	return err
}

func (r *Router) finish(err error) {
	select {
	case <-r.done:
	default:
		r.shutdownErr = err
		r.cancelHandlers()
		close(r.done)
	}
}

func (r *Router) closeSubs(routes []*route) {
	for _, rt := range routes {
		if rt.sub != nil {
			if err := rt.sub.Close(); err != nil && !errors.Is(err, ErrClosed) {
				r.logger.Warn("eventkit: close subscription", "route", rt.info.Name, "err", err)
			}
		}
	}
}

func (r *Router) start(rt *route) {
	if rt.batch {
		r.startBatch(rt)
		return
	}
	if !rt.ordered || rt.concurrency == 1 {
		for i := 0; i < rt.concurrency; i++ {
			r.workers.Add(1)
			go func() {
				defer r.workers.Done()
				r.take(rt, func(m *Message) bool { r.handle(rt, m); return true })
			}()
		}
		return
	}
	r.startLanes(rt, func(lane <-chan *Message) {
		for m := range lane {
			r.handle(rt, m)
		}
	})
}

// startLanes starts one worker per Concurrency, each running work on its
// lane, and a dispatcher that gives each message of rt's subscription to the
// lane of its key; the lanes are closed when the dispatcher stops taking.
func (r *Router) startLanes(rt *route, work func(lane <-chan *Message)) {
	lanes := make([]chan *Message, rt.concurrency)
	for i := range lanes {
		lanes[i] = make(chan *Message, 8)
		r.workers.Add(1)
		go func(lane <-chan *Message) {
			defer r.workers.Done()
			work(lane)
		}(lanes[i])
	}
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		defer func() {
			for _, l := range lanes {
				close(l)
			}
		}()
		r.take(rt, func(m *Message) bool {
			lane := lanes[keyHash(m.Key())%uint32(len(lanes))]
			select {
			case lane <- m:
				return true
			case <-r.stopTake:
				lane <- m // the lane's worker drains it: taken means in flight
				return false
			}
		})
	}()
}

// take gives each message of rt's subscription to deliver, until the
// router stops taking, deliver returns false, or the subscription ends.
func (r *Router) take(rt *route, deliver func(*Message) bool) {
	msgs := rt.sub.Messages()
	for {
		select {
		case <-r.stopTake:
			return
		case m, ok := <-msgs:
			if !ok {
				r.subscriptionEnded(rt)
				return
			}
			if !deliver(m) {
				return
			}
		}
	}
}

func keyHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (r *Router) subscriptionEnded(rt *route) {
	select {
	case <-r.stopTake:
		return
	default:
	}
	err := rt.sub.Err()
	if err == nil {
		err = errors.New("subscription ended")
	}
	select {
	case r.failed <- fmt.Errorf("eventkit: route %q: %w", rt.info.Name, err):
	default:
	}
}

func (r *Router) handle(rt *route, m *Message) {
	err := safeHandle(rt.ctx, rt.h, m)
	if m.Settled() {
		return
	}
	if err == nil {
		if aerr := m.Ack(); aerr != nil {
			r.logger.Warn("eventkit: ack failed", "route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "err", aerr)
		}
		return
	}
	attrs := []any{"route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "type", m.Event.Type(),
		"source", m.Event.Source(), "attempt", m.Attempt, "err", err}
	var pe *PanicError
	if errors.As(err, &pe) {
		attrs = append(attrs, "stack", string(pe.Stack))
	}
	r.logger.Warn("eventkit: handler failed", attrs...)
	r.nackFailed(rt, m, err)
}

// nackFailed settles m, whose handling failed with err: a nack after the
// delay of a *RetryAfterError or the redelivery backoff, or what the
// transport can do instead.
func (r *Router) nackFailed(rt *route, m *Message, err error) {
	var delay time.Duration
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		delay = ra.Delay
	}
	if delay <= 0 {
		delay = r.redeliveryDelay(m.Attempt)
	}
	nerr := m.NackAfter(err, delay)
	if errors.Is(nerr, ErrUnsupported) {
		// The transport cannot wait before a redelivery: ask for one now.
		nerr = m.Nack(err)
	}
	if errors.Is(nerr, ErrUnsupported) {
		// The transport cannot redeliver at all (MQTT). Leaving the message
		// unsettled would hold back every later ack of the subscription, so
		// the Router acks it, loudly: DeadLetter middleware keeps such events.
		r.logger.Error("eventkit: handler failed and the transport cannot redeliver; the event is acked (add middleware.DeadLetter to keep failed events)",
			"route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "err", err, "nack", nerr)
		if aerr := m.Ack(); aerr != nil {
			r.logger.Warn("eventkit: ack failed", "route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "err", aerr)
		}
		return
	}
	if nerr != nil {
		r.logger.Warn("eventkit: nack failed", "route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "err", nerr)
	}
}

// PanicError is the error a handler's panic becomes. It carries the panic
// value and the stack of the panicking goroutine. It is permanent
// (IsPermanent reports true): a handler that panics on a message is not
// retried in place by retry middleware, and dead-letter middleware
// dead-letters the message at once.
//
// The Router recovers the handler's panics innermost, inside all
// middleware, so every middleware sees a *PanicError and never a panic,
// whatever the order they were added in. A panic of a middleware itself is
// recovered too, outside all middleware, and the message is nacked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panic: %v", e.Value) }

// recoverPanics turns the panics of h into *PanicError.
func recoverPanics(h Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) error {
		return safeHandle(ctx, h, m)
	})
}

func safeHandle(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, m)
}

// Default redelivery backoff of a Router (see WithRedeliveryBackoff).
const (
	DefaultRedeliveryInitial = 100 * time.Millisecond
	DefaultRedeliveryMax     = 10 * time.Second
)

// WithRedeliveryBackoff sets the delay of the nacks the Router makes for a
// failed handler that gave no delay (an error that is not a
// *RetryAfterError, or one with a delay <= 0): initial for the first
// delivery of a message, doubling with each delivery attempt
// (Message.Attempt) up to max. The defaults are DefaultRedeliveryInitial
// (100ms) and DefaultRedeliveryMax (10s), so that a message that always
// fails is never redelivered in a hot loop, whatever the middleware. Values
// <= 0 keep the defaults; max is raised to initial if below it. On a
// transport that does not count attempts every redelivery waits initial.
func WithRedeliveryBackoff(initial, max time.Duration) RouterOption {
	return func(r *Router) {
		if initial > 0 {
			r.redeliveryInitial = initial
		}
		if max > 0 {
			r.redeliveryMax = max
		}
	}
}

// redeliveryDelay returns the delay of the nack after delivery attempt.
func (r *Router) redeliveryDelay(attempt int) time.Duration {
	d := r.redeliveryInitial
	for i := 1; i < attempt && d < r.redeliveryMax; i++ {
		d *= 2
	}
	return min(d, max(r.redeliveryMax, r.redeliveryInitial))
}
