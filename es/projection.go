package es

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
)

// ProjectionHandler handles one event of the global log for a projection.
// What an error does is the projection's ErrorPolicy: by default it stops
// the projection (Run returns it) and the event is handled again when the
// projection runs next, so handlers are idempotent or save the checkpoint
// themselves in the read model's transaction (see WithHandlerCheckpoint). A
// panic becomes an *eventkit.PanicError.
type ProjectionHandler func(ctx context.Context, r RecordedEvent) error

// Projector feeds a read model from the global log: it reads from its
// checkpoint, calls the handler for each event, and saves the checkpoint.
//
// Guarantees: the checkpoint never passes an event that was not handled or
// dead-lettered (at-least-once; effectively-once with
// WithHandlerCheckpoint); events of one stream (one key, WithParallel) are
// handled one at a time in log order; a failing event is handled by the
// ErrorPolicy, so that with DeadLetterOnError one poison event does not
// stop the read model.
type Projector struct {
	name        string
	store       EventStore
	checkpoints CheckpointStore
	handler     ProjectionHandler
	cfg         projConfig
	position    atomic.Uint64
	head        atomic.Uint64
	lag         Gauge

	deadLettered atomic.Uint64
}

type projConfig struct {
	subOpts      []SubscribeOption
	saveEvery    int
	handlerSaves bool
	lag          Gauge
	logger       *slog.Logger
	headInterval time.Duration
	filter       Filter
	policy       ErrorPolicy
	parallel     int
	key          func(RecordedEvent) string
	errs         []error
}

// ProjectionOption configures a Projector.
type ProjectionOption func(*projConfig)

// WithProjectionFilter passes only the events that f selects to the handler.
func WithProjectionFilter(f Filter) ProjectionOption {
	return func(c *projConfig) { c.filter = f }
}

// WithSubscribeOptions passes options to the store's Subscribe.
func WithSubscribeOptions(opts ...SubscribeOption) ProjectionOption {
	return func(c *projConfig) { c.subOpts = append(c.subOpts, opts...) }
}

// WithCheckpointEvery saves the checkpoint after every n handled events
// (default 1) and when the projection catches up or stops. A larger n
// replays up to n-1 events after a crash.
func WithCheckpointEvery(n int) ProjectionOption {
	return func(c *projConfig) {
		if n > 0 {
			c.saveEvery = n
		}
	}
}

// WithHandlerCheckpoint declares that the handler saves the checkpoint
// itself, in the same transaction as the read model (effectively-once: the
// SQL stores' checkpoint stores have a SaveTx for this). The projector
// then only loads the checkpoint.
func WithHandlerCheckpoint() ProjectionOption { return func(c *projConfig) { c.handlerSaves = true } }

// Gauge receives a projection's lag each time it is measured. A
// prometheus.Gauge is one; esprom.LagGauge (package es/esprom) makes the
// standard eventkit_es_projection_lag gauge. Package es itself imports no
// metrics library.
type Gauge interface {
	Set(v float64)
}

// WithLagGauge sets g to the projection's lag (positions between the head
// of the log and the projection) each time it is measured.
func WithLagGauge(g Gauge) ProjectionOption {
	return func(c *projConfig) { c.lag = g }
}

// WithProjectionLogger sets the logger (default slog.Default()).
func WithProjectionLogger(l *slog.Logger) ProjectionOption {
	return func(c *projConfig) { c.logger = l }
}

// WithParallel handles up to n events at once (default 1): events are
// spread over n workers by key (the stream id, or WithProjectionKey), so
// that the events of one key are handled one at a time, in log order, while
// different keys are handled concurrently. The checkpoint advances to a
// position only once every event up to it was handled. It cannot be
// combined with WithHandlerCheckpoint (a handler cannot know the position
// every worker has reached).
func WithParallel(n int) ProjectionOption {
	return func(c *projConfig) {
		if n < 1 || n > maxParallel {
			c.errs = append(c.errs, eventkit.InvalidOption("WithParallel", fmt.Sprintf("must be between 1 and %d, got %d", maxParallel, n)))
			return
		}
		c.parallel = n
	}
}

// maxParallel bounds WithParallel.
const maxParallel = 1024

// WithProjectionKey sets the key that orders events under WithParallel
// (default: the stream id). Events with the same key are handled in log
// order; a key that spans streams (a tenant, a customer) keeps their
// relative order too.
func WithProjectionKey(key func(RecordedEvent) string) ProjectionOption {
	return func(c *projConfig) {
		if key == nil {
			c.errs = append(c.errs, eventkit.InvalidOption("WithProjectionKey", "nil function"))
			return
		}
		c.key = key
	}
}

// NewProjector returns a projector named name (the checkpoint's key). It
// returns an error wrapping eventkit.ErrInvalidOption for an invalid
// option or a missing argument.
func NewProjector(name string, store EventStore, checkpoints CheckpointStore, handler ProjectionHandler, opts ...ProjectionOption) (*Projector, error) {
	c := projConfig{saveEvery: 1, logger: slog.Default(), headInterval: time.Second, parallel: 1,
		key: func(r RecordedEvent) string { return r.StreamID }}
	for _, o := range opts {
		o(&c)
	}
	errs := append(c.errs, c.policy.err)
	switch {
	case name == "":
		errs = append(errs, errors.New("es: NewProjector: empty name"))
	case store == nil || checkpoints == nil || handler == nil:
		errs = append(errs, errors.New("es: NewProjector: nil store, checkpoint store or handler"))
	case c.parallel > 1 && c.handlerSaves:
		errs = append(errs, eventkit.InvalidOption("WithParallel", "cannot be combined with WithHandlerCheckpoint"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("es: projection %s: %w", name, err)
	}
	p := &Projector{name: name, store: store, checkpoints: checkpoints, handler: handler, cfg: c, lag: c.lag}
	return p, nil
}

// Position returns the position of the last event the projection handled.
func (p *Projector) Position() uint64 { return p.position.Load() }

// Lag returns how many positions the projection is behind the head of the
// log, as last measured.
func (p *Projector) Lag() uint64 {
	h, pos := p.head.Load(), p.position.Load()
	if h < pos {
		return 0
	}
	return h - pos
}

func (p *Projector) observe(head uint64) {
	if head > p.head.Load() {
		p.head.Store(head)
	}
	if p.lag != nil {
		p.lag.Set(float64(p.Lag()))
	}
}

// MeasureLag reads the head of the log now and updates Lag and the gauge.
func (p *Projector) MeasureLag(ctx context.Context) error {
	h, err := p.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("es: head: %w", err)
	}
	p.observe(h)
	return nil
}

// Run handles events from the checkpoint on until ctx ends (returning nil)
// or the handler or the store fails (returning the error).
func (p *Projector) Run(ctx context.Context) error { return p.run(ctx, false) }

// CatchUp handles the events up to the head of the log as it was when
// CatchUp started, then returns.
func (p *Projector) CatchUp(ctx context.Context) error { return p.run(ctx, true) }

// Rebuild resets the projection: it calls reset (which empties the read
// model), saves the checkpoint 0 and catches up from the start of the log.
func (p *Projector) Rebuild(ctx context.Context, reset func(ctx context.Context) error) error {
	if reset != nil {
		if err := reset(ctx); err != nil {
			return fmt.Errorf("es: reset projection %s: %w", p.name, err)
		}
	}
	if err := p.checkpoints.Save(ctx, p.name, 0); err != nil {
		return fmt.Errorf("es: reset checkpoint of %s: %w", p.name, err)
	}
	p.position.Store(0)
	return p.CatchUp(ctx)
}

func (p *Projector) run(ctx context.Context, untilHead bool) error {
	start, _, err := p.checkpoints.Load(ctx, p.name)
	if err != nil {
		return fmt.Errorf("es: load checkpoint of %s: %w", p.name, err)
	}
	p.position.Store(start)
	head, err := p.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("es: head: %w", err)
	}
	p.observe(head)
	if untilHead && head <= start {
		return nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := p.store.Subscribe(sctx, start, p.cfg.subOpts...)
	if err != nil {
		return fmt.Errorf("es: subscribe %s: %w", p.name, err)
	}
	defer sub.Close()
	ck := &checkpointer{p: p, saved: start}
	if !untilHead {
		head = 0
	}
	if p.cfg.parallel > 1 {
		return p.runParallel(ctx, sub, ck, head)
	}
	return p.runSequential(ctx, sub, ck, head)
}

// checkpointer saves a projection's position.
type checkpointer struct {
	p       *Projector
	saved   uint64
	unsaved int
}

// save saves the projection's position if it moved.
func (c *checkpointer) save(ctx context.Context) error {
	p := c.p
	pos := p.position.Load()
	if p.cfg.handlerSaves || pos == c.saved {
		return nil
	}
	// A detached context: a checkpoint is still worth saving when ctx ends.
	sc, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.checkpoints.Save(sc, p.name, pos); err != nil {
		return fmt.Errorf("es: save checkpoint of %s: %w", p.name, err)
	}
	c.saved, c.unsaved = pos, 0
	return nil
}

// advance records that every event up to pos was handled, and saves the
// checkpoint every saveEvery events or when idle is true (nothing more is
// waiting).
func (c *checkpointer) advance(ctx context.Context, pos uint64, idle bool) error {
	c.p.position.Store(pos)
	c.p.observe(pos)
	c.unsaved++
	if c.unsaved >= c.p.cfg.saveEvery || idle {
		return c.save(ctx)
	}
	return nil
}

// stopped saves the checkpoint of a projection that stops with err (a
// handler's or the store's), and returns err; if ctx ended, it returns nil.
func (c *checkpointer) stopped(ctx context.Context, err error) error {
	serr := c.save(ctx)
	if ctx.Err() != nil {
		return serr
	}
	if serr != nil {
		c.p.cfg.logger.Error("es: checkpoint not saved", "projection", c.p.name, "err", serr)
	}
	return err
}

// ended saves the checkpoint of a projection whose subscription ended and
// returns why it ended: nil if ctx ended (the subscription ends with it, and
// Run's select may see that before ctx.Done), as when ctx.Done is seen first.
func (c *checkpointer) ended(ctx context.Context, sub Subscription) error {
	if err := c.save(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return sub.Err()
}

// runSequential handles the events one at a time. head > 0: stop there
// (CatchUp).
func (p *Projector) runSequential(ctx context.Context, sub Subscription, ck *checkpointer, head uint64) error {
	headTick := time.NewTicker(p.cfg.headInterval)
	defer headTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ck.save(ctx)
		case <-headTick.C:
			p.measureHead(ctx)
		case r, ok := <-sub.Events():
			if !ok {
				return ck.ended(ctx, sub)
			}
			if p.cfg.filter.Match(&r) {
				if err := p.project(ctx, r); err != nil {
					return ck.stopped(ctx, err)
				}
			}
			if err := ck.advance(ctx, r.Position, len(sub.Events()) == 0); err != nil {
				return err
			}
			if head > 0 && r.Position >= head {
				return ck.save(ctx)
			}
		}
	}
}

func (p *Projector) measureHead(ctx context.Context) {
	if h, err := p.store.Head(ctx); err == nil {
		p.observe(h)
	}
}
