package es

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ProjectionHandler handles one event of the global log for a projection.
// Returning an error stops the projection (Run returns it); the event is
// handled again when the projection runs next, so handlers are idempotent
// or save the checkpoint themselves in the read model's transaction (see
// WithHandlerCheckpoint).
type ProjectionHandler func(ctx context.Context, r RecordedEvent) error

// Projector feeds a read model from the global log: it reads from its
// checkpoint, calls the handler for each event, and saves the checkpoint.
type Projector struct {
	name        string
	store       EventStore
	checkpoints CheckpointStore
	handler     ProjectionHandler
	cfg         projConfig
	position    atomic.Uint64
	head        atomic.Uint64
	lag         Gauge
}

type projConfig struct {
	subOpts      []SubscribeOption
	saveEvery    int
	handlerSaves bool
	lag          Gauge
	logger       *slog.Logger
	headInterval time.Duration
	filter       Filter
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

// NewProjector returns a projector named name (the checkpoint's key).
func NewProjector(name string, store EventStore, checkpoints CheckpointStore, handler ProjectionHandler, opts ...ProjectionOption) (*Projector, error) {
	c := projConfig{saveEvery: 1, logger: slog.Default(), headInterval: time.Second}
	for _, o := range opts {
		o(&c)
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
	saved, unsaved := start, 0
	save := func() error {
		pos := p.position.Load()
		if p.cfg.handlerSaves || pos == saved {
			return nil
		}
		// A detached context: a checkpoint is still worth saving when ctx ends.
		sc, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		if err := p.checkpoints.Save(sc, p.name, pos); err != nil {
			return fmt.Errorf("es: save checkpoint of %s: %w", p.name, err)
		}
		saved, unsaved = pos, 0
		return nil
	}
	headTick := time.NewTicker(p.cfg.headInterval)
	defer headTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return save()
		case <-headTick.C:
			if h, err := p.store.Head(ctx); err == nil {
				p.observe(h)
			}
		case r, ok := <-sub.Events():
			if !ok {
				if err := save(); err != nil {
					return err
				}
				if err := sub.Err(); err != nil {
					return err
				}
				return ctx.Err()
			}
			if !p.cfg.filter.Match(&r) {
				// skipped, but the position advances
			} else if err := p.handler(ctx, r); err != nil {
				if serr := save(); serr != nil {
					p.cfg.logger.Error("es: checkpoint not saved", "projection", p.name, "err", serr)
				}
				return fmt.Errorf("es: projection %s at position %d: %w", p.name, r.Position, err)
			}
			p.position.Store(r.Position)
			p.observe(r.Position)
			unsaved++
			if unsaved >= p.cfg.saveEvery || len(sub.Events()) == 0 {
				if err := save(); err != nil {
					return err
				}
			}
			if untilHead && r.Position >= head {
				return save()
			}
		}
	}
}
