package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// EventType names an event type a stage consumes or produces, and the
// dataschema its data follows ("" when the stage does not say).
type EventType struct {
	Type       string
	DataSchema string
}

func (t EventType) String() string {
	if t.DataSchema == "" {
		return t.Type
	}
	return t.Type + " (" + t.DataSchema + ")"
}

// kind is what a stage does with its outputs.
type kind int

const (
	kindProcess kind = iota // emits events to its successors
	kindFilter              // emits some of its inputs unchanged
	kindRoute               // emits its input to one successor, chosen by key
	kindSink                // emits nothing; has no successor
)

// Stage is one step of a pipeline, made by Process, Map, Filter, Split,
// Typed, Batch, Route, Publish or Discard and configured by Options. A
// stage is added to a pipeline once (Node.Then or Merge).
type Stage struct {
	name string
	kind kind
	// proc handles one event (with its topic) and returns the output
	// events, appended to out (a buffer of the caller's, empty); batch
	// handles a batch.
	proc  func(ctx context.Context, e event.Event, topic string, out []event.Event) ([]event.Event, error)
	batch func(ctx context.Context, in []*eventkit.Message) ([]event.Event, error)
	route func(e event.Event) string

	batchSize int
	batchWait time.Duration

	workers  int
	ordered  bool
	queue    int
	mw       []eventkit.Middleware
	consumes []EventType
	produces []EventType
	declared bool // produces was declared (possibly empty)
	errs     []error

	log     *slog.Logger  // the pipeline's, set when the stage is added
	skipped atomic.Uint64 // events a policy passed on or dropped undone
}

func (s *Stage) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

// Name returns the stage's name.
func (s *Stage) Name() string { return s.name }

// Option configures a stage.
type Option func(*Stage)

// Workers sets how many events the stage handles at once (default 1).
func Workers(n int) Option { return func(s *Stage) { s.workers = n } }

// OrderedByKey keeps the order of events that share a key
// (eventkit.EventKey: the partitionkey extension, else the subject) through
// this stage when Workers is above 1: the events of one key are handled one
// after another, in arrival order. A pipeline whose every stage keeps the
// order, from a source that delivers a key in order, publishes each key's
// outputs in input order.
func OrderedByKey() Option { return func(s *Stage) { s.ordered = true } }

// Queue bounds the stage's input queue (default: the pipeline's
// DefaultQueue). A full queue blocks the stages that feed it.
func Queue(n int) Option { return func(s *Stage) { s.queue = n } }

// Use adds middleware around the stage's function; the first given is the
// outermost. The middleware see each input as an *eventkit.Message (one per
// batch for a batch stage, carrying its first event) and decide as they do
// in a Router: nil passes the outputs on, an error fails the input (its
// source messages are nacked), and a middleware that acks the message (as
// middleware.DeadLetter does after keeping it) ends it without outputs.
func Use(mw ...eventkit.Middleware) Option {
	return func(s *Stage) { s.mw = append(s.mw, mw...) }
}

// Consumes declares the event types the stage accepts. The pipeline refuses
// to build when an upstream stage declares it produces another type, or
// the same type with another dataschema; at run time an event of another
// type fails with a permanent *ContractError. No declaration: any type.
func Consumes(types ...EventType) Option {
	return func(s *Stage) { s.consumes = append(s.consumes, types...) }
}

// Produces declares the event types the stage emits (none: it emits
// nothing). Downstream declarations are checked against it when the
// pipeline is built; at run time an output of another type fails the input
// with a permanent *ContractError.
func Produces(types ...EventType) Option {
	return func(s *Stage) { s.produces, s.declared = append(s.produces, types...), true }
}

// ContractError is the error of an event that breaks a stage's declared
// contract: a type the stage does not consume, or an output it does not
// declare. It is permanent: retry middleware does not retry it.
type ContractError struct {
	Stage string
	Type  string
	What  string // "consumes" or "produces"
}

func (e *ContractError) Error() string {
	return fmt.Sprintf("pipeline: stage %q does not %s event type %q", e.Stage, e.What[:len(e.What)-1], e.Type)
}

func newStage(name string, k kind, opts []Option) *Stage {
	s := &Stage{name: name, kind: k, workers: 1}
	for _, o := range opts {
		o(s)
	}
	if name == "" {
		s.errs = append(s.errs, errors.New("pipeline: a stage needs a name"))
	}
	if s.workers < 1 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: stage %q: workers must be at least 1, got %d", name, s.workers))
	}
	if s.queue < 0 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: stage %q: queue must not be negative, got %d", name, s.queue))
	}
	return s
}

// Process returns a stage that calls fn for each input event and emits the
// events fn returns (none, one or more) to its successors, in order.
func Process(name string, fn func(ctx context.Context, e event.Event) ([]event.Event, error), opts ...Option) *Stage {
	s := newStage(name, kindProcess, opts)
	s.proc = func(ctx context.Context, e event.Event, _ string, _ []event.Event) ([]event.Event, error) {
		return fn(ctx, e)
	}
	return s
}

// Map returns a stage that replaces each event by fn's result.
func Map(name string, fn func(ctx context.Context, e event.Event) (event.Event, error), opts ...Option) *Stage {
	s := newStage(name, kindProcess, opts)
	s.proc = func(ctx context.Context, e event.Event, _ string, out []event.Event) ([]event.Event, error) {
		r, err := fn(ctx, e)
		if err != nil {
			return nil, err
		}
		return append(out, r), nil
	}
	return s
}

// Split returns a stage that replaces each event by the events fn returns
// (it is Process under another name, for readability).
func Split(name string, fn func(ctx context.Context, e event.Event) ([]event.Event, error), opts ...Option) *Stage {
	return Process(name, fn, opts...)
}

// Filter returns a stage that passes on the events keep accepts, unchanged,
// and ends the others (their source messages are acked once every other
// branch settled them). It produces what it consumes.
func Filter(name string, keep func(e event.Event) (bool, error), opts ...Option) *Stage {
	s := newStage(name, kindFilter, opts)
	s.proc = func(_ context.Context, e event.Event, _ string, out []event.Event) ([]event.Event, error) {
		ok, err := keep(e)
		if err != nil || !ok {
			return nil, err
		}
		return append(out, e), nil
	}
	return s
}

// Typed returns a stage that decodes each event's data (JSON) as In, calls
// fn, and emits an event of type outType whose data is fn's result as JSON.
// The output keeps the input's id, source, subject and extensions, so that
// a redelivered input gives the same output id (for deduplication
// downstream). The stage consumes inType and produces outType; an input
// whose data does not decode fails with a permanent error.
func Typed[In, Out any](name, inType, outType string, fn func(ctx context.Context, in In) (Out, error), opts ...Option) *Stage {
	opts = append([]Option{Consumes(EventType{Type: inType}), Produces(EventType{Type: outType})}, opts...)
	s := newStage(name, kindProcess, opts)
	s.proc = func(ctx context.Context, ev event.Event, _ string, outs []event.Event) ([]event.Event, error) {
		var in In
		if err := json.Unmarshal(ev.Data(), &in); err != nil {
			return nil, eventkit.Permanent(fmt.Errorf("pipeline: stage %q: decode %s data: %w", name, inType, err))
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		e := CloneEvent(ev)
		e.SetType(outType)
		if err := e.SetData(event.ApplicationJSON, out); err != nil {
			return nil, eventkit.Permanent(fmt.Errorf("pipeline: stage %q: encode %s data: %w", name, outType, err))
		}
		return append(outs, e), nil
	}
	return s
}

// Batch returns a stage that gathers up to size events, or what arrived
// within wait of the first one, and calls fn once per batch; the events
// fn returns are emitted, and each carries the source messages of the whole
// batch (they are acked when every output is settled). A failed batch fails
// every input. With OrderedByKey a batch stage needs Workers(1).
func Batch(name string, size int, wait time.Duration, fn func(ctx context.Context, events []event.Event) ([]event.Event, error), opts ...Option) *Stage {
	s := newStage(name, kindProcess, opts)
	s.setBatch(size, wait, func(ctx context.Context, in []*eventkit.Message) ([]event.Event, error) {
		evs := make([]event.Event, len(in))
		for i, m := range in {
			evs[i] = m.Event
		}
		return fn(ctx, evs)
	})
	return s
}

func (s *Stage) setBatch(size int, wait time.Duration, fn func(context.Context, []*eventkit.Message) ([]event.Event, error)) {
	s.batch, s.batchSize, s.batchWait = fn, size, wait
	if size < 1 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: stage %q: batch size must be at least 1, got %d", s.name, size))
	}
	if wait <= 0 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: stage %q: batch wait must be positive, got %s", s.name, wait))
	}
	if s.ordered && s.workers > 1 {
		s.errs = append(s.errs, fmt.Errorf("pipeline: stage %q: an ordered batch stage needs Workers(1)", s.name))
	}
}

// Route returns a stage that sends each event, unchanged, to the branch
// named by key(e) (Node.Case), or to the Default branch when no case has
// that name; with no default such an event ends there (as in Filter).
func Route(name string, key func(e event.Event) string, opts ...Option) *Stage {
	s := newStage(name, kindRoute, opts)
	s.route = key
	s.proc = func(_ context.Context, e event.Event, _ string, out []event.Event) ([]event.Event, error) {
		return append(out, e), nil
	}
	return s
}

// Publish returns a sink that publishes each event with pub to topic ("":
// the topic its source message came from). An event is settled when
// Publish returned nil: only then are its source messages acked.
func Publish(name string, pub eventkit.Publisher, topic string, opts ...Option) *Stage {
	s := newStage(name, kindSink, opts)
	s.proc = func(ctx context.Context, e event.Event, t string, _ []event.Event) ([]event.Event, error) {
		return nil, pub.Publish(ctx, pickTopic(topic, t), e)
	}
	return s
}

// PublishBatch returns a sink that publishes up to size events (or what
// arrived within wait of the first one) per Publish call, one call per
// topic, in arrival order.
func PublishBatch(name string, pub eventkit.Publisher, topic string, size int, wait time.Duration, opts ...Option) *Stage {
	s := newStage(name, kindSink, opts)
	s.proc = func(ctx context.Context, e event.Event, t string, _ []event.Event) ([]event.Event, error) {
		return nil, pub.Publish(ctx, pickTopic(topic, t), e)
	}
	s.setBatch(size, wait, func(ctx context.Context, in []*eventkit.Message) ([]event.Event, error) {
		for i := 0; i < len(in); {
			t := pickTopic(topic, in[i].Topic)
			j := i + 1
			for j < len(in) && pickTopic(topic, in[j].Topic) == t {
				j++
			}
			evs := make([]event.Event, 0, j-i)
			for _, m := range in[i:j] {
				evs = append(evs, m.Event)
			}
			if err := pub.Publish(ctx, t, evs...); err != nil {
				return nil, err
			}
			i = j
		}
		return nil, nil
	})
	return s
}

func pickTopic(topic, from string) string {
	if topic == "" {
		return from
	}
	return topic
}

// Discard returns a sink that drops every event (their source messages are
// acked): the explicit end of a branch that publishes nothing.
func Discard(name string, opts ...Option) *Stage {
	s := newStage(name, kindSink, opts)
	s.proc = func(context.Context, event.Event, string, []event.Event) ([]event.Event, error) { return nil, nil }
	return s
}

// Sink returns a sink that calls fn for each event; the event is settled
// when fn returns nil.
func Sink(name string, fn func(ctx context.Context, e event.Event) error, opts ...Option) *Stage {
	s := newStage(name, kindSink, opts)
	s.proc = func(ctx context.Context, e event.Event, _ string, _ []event.Event) ([]event.Event, error) {
		return nil, fn(ctx, e)
	}
	return s
}
