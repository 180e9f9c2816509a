package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Step is one step of a saga, triggered by an event type (Saga.On).
type Step[S any] struct {
	// Name names the step in the history (default: the event type).
	Name string
	// Starts lets the step create an instance when none exists for the
	// event's correlation key. Events of other steps without an instance
	// are ignored.
	Starts bool
	// Do runs the step: it reads the event, changes c.State and emits
	// messages (c.Emit). An error (or a panic) fails the instance and
	// starts its compensation, unless it is Transient or ctx ended (the
	// event is then handled again later). Do must have no other effect: it may run more than
	// once for one event (only one run is committed).
	Do func(ctx context.Context, c *Context[S], e event.Event) error
	// Compensate, if set, undoes the step during compensation, by emitting
	// messages and changing the state. An error (or a panic) makes it run
	// again later, with backoff.
	Compensate func(ctx context.Context, c *Context[S]) error
}

// Context is what a step or a compensation sees and changes of its
// instance.
type Context[S any] struct {
	// Saga and ID name the instance.
	Saga, ID string
	// State is the instance's state; changes are saved with the step.
	State *S

	defaults  func(*event.Event)
	out       []Message
	deadline  time.Time
	setDL     bool
	completed bool
}

// Emit records a message to publish to topic when the step commits. An
// event without an id gets one that is stable for this step of this
// instance; without a source, "eventkit/saga/<saga>"; without the
// correlation extension (when the saga correlates by one), the instance's
// id.
func (c *Context[S]) Emit(topic string, e event.Event) {
	c.defaults(&e)
	c.out = append(c.out, Message{Topic: topic, Event: e})
}

// Complete ends the instance successfully when the step commits (no effect
// in a compensation).
func (c *Context[S]) Complete() { c.completed = true }

// SetDeadline sets when the instance times out and compensates (zero:
// never; no effect in a compensation).
func (c *Context[S]) SetDeadline(t time.Time) { c.deadline, c.setDL = t, true }

// Transient wraps err so that a step returning it is retried (the event is
// redelivered) instead of failing the instance.
func Transient(err error) error { return &transientError{err} }

type transientError struct{ err error }

func (e *transientError) Error() string { return "saga: transient: " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Option configures a Saga.
type Option func(*config)

type config struct {
	correlate   func(event.Event) string
	extension   string
	timeout     time.Duration
	poll        time.Duration
	retries     int
	backoff     [2]time.Duration
	metrics     Metrics
	logger      *slog.Logger
	now         func() time.Time
	dueBatch    int
	eventSource string
}

// CorrelateByExtension correlates events to instances by the value of the
// CloudEvents extension name (default: "correlationid").
func CorrelateByExtension(name string) Option {
	return func(c *config) {
		c.extension = name
		c.correlate = func(e event.Event) string { return extensionString(e, name) }
	}
}

// CorrelateBySubject correlates events to instances by their subject.
func CorrelateBySubject() Option {
	return func(c *config) {
		c.extension = ""
		c.correlate = func(e event.Event) string { return e.Subject() }
	}
}

// CorrelateBy correlates events to instances by key(e); an empty key means
// the event belongs to no instance.
func CorrelateBy(key func(event.Event) string) Option {
	return func(c *config) { c.extension, c.correlate = "", key }
}

// WithTimeout gives every new instance a deadline d after it starts
// (default: none; a step may set one with Context.SetDeadline).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithPollInterval sets how often Run looks for due timers (default 1s).
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.poll = d } }

// WithConflictRetries sets how many times an event is handled again after
// a version conflict before HandleEvent returns ErrConflict (default 10).
func WithConflictRetries(n int) Option { return func(c *config) { c.retries = n } }

// WithCompensationBackoff sets the first and the longest wait before a
// failed compensation runs again (default 1s and 1m, doubling).
func WithCompensationBackoff(first, longest time.Duration) Option {
	return func(c *config) { c.backoff = [2]time.Duration{first, longest} }
}

// WithMetrics sets where the saga reports its metrics (default: nowhere).
func WithMetrics(m Metrics) Option { return func(c *config) { c.metrics = m } }

// WithLogger sets the saga's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock sets the saga's clock (default time.Now), for tests.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// ErrInvalidOption is returned (wrapped) by New for an invalid option.
var ErrInvalidOption = errors.New("saga: invalid option")

// Saga is a process manager with state S. Create it with New, add steps
// with On, then feed it events (Handler or HandleEvent) and run its timers
// (Run). It is safe for concurrent use once steps are added.
type Saga[S any] struct {
	name   string
	store  Store
	cfg    config
	steps  map[string]*Step[S] // by event type
	byName map[string]*Step[S]
}

// New returns the saga name, keeping its instances in store.
func New[S any](name string, store Store, opts ...Option) (*Saga[S], error) {
	cfg := config{
		poll: time.Second, retries: 10, backoff: [2]time.Duration{time.Second, time.Minute},
		metrics: NopMetrics{}, logger: slog.Default(), now: time.Now, dueBatch: 100,
	}
	CorrelateByExtension("correlationid")(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: empty saga name", ErrInvalidOption)
	case store == nil:
		return nil, fmt.Errorf("%w: nil store", ErrInvalidOption)
	case cfg.correlate == nil:
		return nil, fmt.Errorf("%w: nil correlation key function", ErrInvalidOption)
	case cfg.timeout < 0 || cfg.poll <= 0 || cfg.retries < 0:
		return nil, fmt.Errorf("%w: negative timeout or retries, or no poll interval", ErrInvalidOption)
	case cfg.backoff[0] <= 0 || cfg.backoff[1] < cfg.backoff[0]:
		return nil, fmt.Errorf("%w: compensation backoff %v", ErrInvalidOption, cfg.backoff)
	case cfg.metrics == nil || cfg.logger == nil || cfg.now == nil:
		return nil, fmt.Errorf("%w: nil metrics, logger or clock", ErrInvalidOption)
	}
	cfg.eventSource = "eventkit/saga/" + name
	return &Saga[S]{name: name, store: store, cfg: cfg,
		steps: map[string]*Step[S]{}, byName: map[string]*Step[S]{}}, nil
}

// Name returns the saga's name.
func (s *Saga[S]) Name() string { return s.name }

// On adds a step triggered by events of eventType. It is an error to add a
// second step for one event type or name, or a step without Do. Add every
// step before the saga handles events.
func (s *Saga[S]) On(eventType string, step Step[S]) error {
	if step.Name == "" {
		step.Name = eventType
	}
	switch {
	case eventType == "" || step.Do == nil:
		return fmt.Errorf("saga %s: step %q needs an event type and Do", s.name, step.Name)
	case s.steps[eventType] != nil:
		return fmt.Errorf("saga %s: a step already handles %q", s.name, eventType)
	case s.byName[step.Name] != nil:
		return fmt.Errorf("saga %s: a step is already named %q", s.name, step.Name)
	}
	s.steps[eventType], s.byName[step.Name] = &step, &step
	return nil
}

func extensionString(e event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
