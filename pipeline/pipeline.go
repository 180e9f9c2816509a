package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
)

// Defaults of a Pipeline (see the options).
const (
	DefaultQueue       = 64
	DefaultMaxInFlight = 256
)

// Pipeline is a graph of stages fed by subscriptions: events flow from the
// sources (From) through the stages (Node.Then, Merge, Node.Case) to the
// sinks (Publish, Sink, Discard), over bounded queues. Build it, then Run
// (or Start and Shutdown) it once.
type Pipeline struct {
	logger            *slog.Logger
	queue             int
	maxInFlight       int
	shutdownTimeout   time.Duration
	redeliveryInitial time.Duration
	redeliveryMax     time.Duration

	mu      sync.Mutex
	sources []*source
	nodes   []*Node
	errs    []error
	started bool

	run *runState
}

// PipelineOption configures a Pipeline.
type PipelineOption func(*Pipeline)

// WithLogger sets the logger (slog.Default() otherwise).
func WithLogger(l *slog.Logger) PipelineOption { return func(p *Pipeline) { p.logger = l } }

// WithQueue sets the default bound of each stage's input queue
// (DefaultQueue).
func WithQueue(n int) PipelineOption { return func(p *Pipeline) { p.queue = n } }

// WithMaxInFlight bounds the source messages taken and not yet settled, per
// source (DefaultMaxInFlight). When the bound is reached the source stops
// taking messages from its subscription: the transport stops fetching
// once its own (bounded) buffer is full.
func WithMaxInFlight(n int) PipelineOption { return func(p *Pipeline) { p.maxInFlight = n } }

// WithShutdownTimeout bounds the drain Run performs when its context ends
// (default 30s).
func WithShutdownTimeout(d time.Duration) PipelineOption {
	return func(p *Pipeline) { p.shutdownTimeout = d }
}

// WithRedeliveryBackoff sets the delay of the nack of a source message
// whose event failed in a stage without a delay of its own
// (eventkit.RetryAfter): initial, doubling with each delivery attempt up to
// max (defaults: eventkit.DefaultRedeliveryInitial and
// eventkit.DefaultRedeliveryMax).
func WithRedeliveryBackoff(initial, max time.Duration) PipelineOption {
	return func(p *Pipeline) { p.redeliveryInitial, p.redeliveryMax = initial, max }
}

// New returns an empty pipeline.
func New(opts ...PipelineOption) *Pipeline {
	p := &Pipeline{
		logger:            slog.Default(),
		queue:             DefaultQueue,
		maxInFlight:       DefaultMaxInFlight,
		shutdownTimeout:   30 * time.Second,
		redeliveryInitial: eventkit.DefaultRedeliveryInitial,
		redeliveryMax:     eventkit.DefaultRedeliveryMax,
	}
	for _, o := range opts {
		o(p)
	}
	if p.queue < 1 {
		p.errs = append(p.errs, fmt.Errorf("pipeline: queue must be at least 1, got %d", p.queue))
	}
	if p.maxInFlight < 1 {
		p.errs = append(p.errs, fmt.Errorf("pipeline: max in flight must be at least 1, got %d", p.maxInFlight))
	}
	return p
}

// Source is where a pipeline takes its events: a subscription to Pattern.
type Source struct {
	// Name names the source in Stats ("source" when empty).
	Name       string
	Subscriber eventkit.Subscriber
	Pattern    string
	Options    []eventkit.SubscribeOption
	// Produces declares the event types the source delivers, when known;
	// the stages' Consumes are checked against it when the pipeline is
	// built.
	Produces []EventType
}

type source struct {
	Source
	node *Node
}

// Node is a place in the pipeline's graph: a source or a stage. Stages are
// added after it with Then (several Then on one node fan out: each branch
// gets its own copy of every event) or, after a Route stage, with Case and
// Default.
type Node struct {
	p     *Pipeline
	stage *Stage // nil for a source
	name  string
	src   *source

	up    []*Node
	next  []*Node
	cases map[string]*Node
	dflt  *Node

	in    types // what arrives (nil: unknown)
	out   types // what leaves (nil: unknown)
	stats *nodeStats
}

// types is a set of event types; nil means unknown.
type types []EventType

// From adds a source and returns its node.
func (p *Pipeline) From(src Source) *Node {
	if src.Name == "" {
		src.Name = "source"
	}
	s := &source{Source: src}
	n := &Node{p: p, name: src.Name, src: s, stats: &nodeStats{}}
	s.node = n
	p.mu.Lock()
	defer p.mu.Unlock()
	if src.Subscriber == nil {
		p.errs = append(p.errs, fmt.Errorf("pipeline: source %q: nil Subscriber", src.Name))
	}
	p.sources = append(p.sources, s)
	p.nodes = append(p.nodes, n)
	return n
}

// Then adds s after n and returns its node.
func (n *Node) Then(s *Stage) *Node { return n.p.add(s, n) }

// Merge adds s after every node of from (fan-in) and returns its node.
func Merge(s *Stage, from ...*Node) *Node {
	if len(from) == 0 {
		panic("pipeline: Merge needs at least one node")
	}
	return from[0].p.add(s, from...)
}

// Case adds s as the branch of the Route stage n for the key name.
func (n *Node) Case(name string, s *Stage) *Node {
	c := n.p.addNode(s)
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	switch {
	case n.stage == nil || n.stage.kind != kindRoute:
		n.p.errs = append(n.p.errs, fmt.Errorf("pipeline: Case(%q) on %q, which is not a Route stage", name, n.name))
	case n.cases[name] != nil:
		n.p.errs = append(n.p.errs, fmt.Errorf("pipeline: route %q: case %q given twice", n.name, name))
	default:
		if n.cases == nil {
			n.cases = map[string]*Node{}
		}
		n.cases[name] = c
	}
	c.up = append(c.up, n)
	return c
}

// Default adds s as the branch of the Route stage n for the keys no case
// names.
func (n *Node) Default(s *Stage) *Node {
	c := n.p.addNode(s)
	n.p.mu.Lock()
	defer n.p.mu.Unlock()
	switch {
	case n.stage == nil || n.stage.kind != kindRoute:
		n.p.errs = append(n.p.errs, fmt.Errorf("pipeline: Default on %q, which is not a Route stage", n.name))
	case n.dflt != nil:
		n.p.errs = append(n.p.errs, fmt.Errorf("pipeline: route %q: default given twice", n.name))
	default:
		n.dflt = c
	}
	c.up = append(c.up, n)
	return c
}

func (p *Pipeline) addNode(s *Stage) *Node {
	n := &Node{p: p, stage: s, name: s.name, stats: &nodeStats{}}
	s.log = p.logger
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, s.errs...)
	if slices.ContainsFunc(p.nodes, func(o *Node) bool { return o.stage == s }) {
		p.errs = append(p.errs, fmt.Errorf("pipeline: stage %q added twice", s.name))
	}
	p.nodes = append(p.nodes, n)
	return n
}

func (p *Pipeline) add(s *Stage, from ...*Node) *Node {
	n := p.addNode(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range from {
		if u.stage != nil && u.stage.kind == kindRoute {
			p.errs = append(p.errs, fmt.Errorf("pipeline: stage %q follows the Route stage %q: use Case or Default", s.name, u.name))
		}
		u.next = append(u.next, n)
		n.up = append(n.up, u)
	}
	return n
}

// successors returns every node directly after n.
func (n *Node) successors() []*Node {
	out := slices.Clone(n.next)
	for _, c := range n.cases {
		out = append(out, c)
	}
	if n.dflt != nil {
		out = append(out, n.dflt)
	}
	return out
}

// Build checks the pipeline: stage options, names, the shape of the graph
// (every branch ends in a sink, sinks have no successor) and the contracts
// between stages (each declared Consumes against what its upstream
// declares it produces, type and dataschema). It returns every problem
// found, joined; Start and Run call it.
func (p *Pipeline) Build() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := slices.Clone(p.errs)
	if len(p.sources) == 0 {
		errs = append(errs, errors.New("pipeline: no source"))
	}
	names := map[string]bool{}
	for _, n := range p.nodes { // in creation order: every node after its upstream
		if names[n.name] {
			errs = append(errs, fmt.Errorf("pipeline: two stages named %q", n.name))
		}
		names[n.name] = true
		errs = append(errs, n.check()...)
	}
	return errors.Join(errs...)
}

func (n *Node) check() []error {
	var errs []error
	if n.src != nil {
		n.out = n.src.Produces
		if len(n.successors()) == 0 {
			errs = append(errs, fmt.Errorf("pipeline: source %q has no stage after it", n.name))
		}
		return errs
	}
	s := n.stage
	n.in = nil
	known := true
	for _, u := range n.up {
		if u.out == nil {
			known = false
		}
		n.in = append(n.in, u.out...)
	}
	if !known {
		n.in = nil
	} else if n.in == nil {
		n.in = types{}
	}
	if n.in != nil && s.consumes != nil {
		for _, t := range n.in {
			errs = append(errs, contractMismatch(n, t)...)
		}
	}
	switch {
	case s.declared:
		n.out = s.produces
		if n.out == nil {
			n.out = types{}
		}
	case s.kind == kindFilter || s.kind == kindRoute:
		n.out = n.in
	default:
		n.out = nil
	}
	succ := n.successors()
	switch {
	case s.kind == kindSink && len(succ) > 0:
		errs = append(errs, fmt.Errorf("pipeline: sink %q has stages after it", n.name))
	case s.kind != kindSink && len(succ) == 0:
		errs = append(errs, fmt.Errorf("pipeline: stage %q ends its branch: add a sink after it (Publish, Sink or Discard)", n.name))
	}
	return errs
}

// contractMismatch checks one incoming type against n's Consumes.
func contractMismatch(n *Node, t EventType) []error {
	from := make([]string, 0, len(n.up))
	for _, u := range n.up {
		if slices.ContainsFunc(u.out, func(o EventType) bool { return o.Type == t.Type }) {
			from = append(from, u.name)
		}
	}
	i := slices.IndexFunc(n.stage.consumes, func(c EventType) bool { return c.Type == t.Type })
	if i < 0 {
		return []error{fmt.Errorf("pipeline: stage %q consumes %v but %q produces %q", n.name, n.stage.consumes, from, t.Type)}
	}
	c := n.stage.consumes[i]
	if c.DataSchema != "" && t.DataSchema != "" && c.DataSchema != t.DataSchema {
		return []error{fmt.Errorf("pipeline: stage %q consumes %q with dataschema %q but %q produces it with dataschema %q",
			n.name, t.Type, c.DataSchema, from, t.DataSchema)}
	}
	return nil
}

// consumes reports whether the stage accepts events of type typ.
func (s *Stage) accepts(typ string) bool {
	return s.consumes == nil || slices.ContainsFunc(s.consumes, func(c EventType) bool { return c.Type == typ })
}

// emits reports whether the stage may emit events of type typ.
func (s *Stage) emits(typ string) bool {
	if !s.declared || s.kind == kindFilter || s.kind == kindRoute {
		return true
	}
	return slices.ContainsFunc(s.produces, func(c EventType) bool { return c.Type == typ })
}
