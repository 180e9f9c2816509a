// Package pipeconf loads pipelines (package pipeline) from YAML
// definitions: one input (a transport by URL, a topic pattern, a group),
// a list of processors, and one or more outputs. An invalid definition is
// refused with every error found, each naming the file, the line and the
// field (an *Error); unknown fields are errors, never ignored.
//
// The built-in processor kinds are map and split (by a Go function
// registered in Loader.Functions), filter (by attribute values), route
// (by an attribute, to named outputs) and batch. Other kinds are plugged
// in through Loader.Kinds: package pipeline/cesql gives "sql" (CloudEvents
// SQL filters) and pipeline/pipecel gives "cel" (CEL filters and maps),
// so that neither library is linked by users who do not ask for it.
// Transports are opened by the caller's Transports, which the eventkit
// command implements for its URL schemes.
package pipeconf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/pipeline"
	"gopkg.in/yaml.v3"
)

// Transports opens the inputs and outputs of a definition, named by URL.
type Transports interface {
	Subscriber(ctx context.Context, url string) (eventkit.Subscriber, error)
	Publisher(ctx context.Context, url string) (eventkit.Publisher, error)
}

// Kind builds the stage of one processor kind from its settings (the
// mapping under the kind's key); opts carry the common settings (workers,
// ordered, queue, retry, timeout, consumes, produces). It reports problems
// with n.Errorf and may return nil then.
type Kind func(name string, n *Node, opts []pipeline.Option) *pipeline.Stage

// Function is a Go function a definition names in a map or split
// processor.
type Function func(ctx context.Context, e event.Event) ([]event.Event, error)

// Loader turns definitions into pipelines.
type Loader struct {
	Transports Transports
	// Functions are the Go functions map and split processors may name.
	Functions map[string]Function
	// Lookups are the Go lookups enrich processors may name (function:).
	Lookups map[string]pipeline.Lookup
	// Kinds are the processor kinds besides the built-in ones, by key.
	Kinds map[string]Kind
	// Inputs are the input kinds besides a transport URL, by key
	// (input: {http: {...}}): package pipeline/pipehttp gives "http",
	// package pipeline/pipepg "cdc" and "outbox".
	Inputs map[string]InputKind
}

// InputKind builds a declared input of one kind from its settings (the
// mapping under the kind's key). It reports problems with n.Errorf and may
// return nil then; resources it holds are released through n.OnClose.
type InputKind func(n *Node) *Input

// Input is a declared input: the source the pipeline reads and, for an
// input that runs a producer of its own (an HTTP server, a CDC reader, an
// outbox relay, usually pushing into a pipeline.Feed), that producer.
type Input struct {
	Source pipeline.Source
	// Run, when set, runs the producer until ctx ends; Loaded.Start starts
	// it once the pipeline runs, and Loaded.Shutdown ends it (and waits for
	// it) before the pipeline drains, so that the producer's last calls
	// are answered by the pipeline. An error other than ctx's ends the
	// pipeline.
	Run func(ctx context.Context) error
	// Close, when set, releases what the input holds (its feed); Loaded.Close
	// calls it after the pipeline ended.
	Close func() error
}

// Loaded is a pipeline built from a definition, with the transports it
// opened (Close closes them, after the pipeline has ended) and the
// producer of its input, if it has one. Run it with Run, or Start,
// Shutdown and Wait: they start and stop the producer around the
// pipeline's own Start and Shutdown.
type Loaded struct {
	Pipeline *pipeline.Pipeline
	closers  []func() error
	producer func(ctx context.Context) error
	drain    time.Duration
	life     *life
}

// Close closes the transports the definition opened.
func (l *Loaded) Close() error {
	var errs []error
	for _, c := range slices.Backward(l.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

var builtinKinds = []string{"map", "split", "filter", "route", "batch", "enrich"}

// Load parses the definition in data (file names it in errors), opens its
// transports and builds the pipeline (pipeline.Build included). On error
// nothing stays open.
func (l *Loader) Load(ctx context.Context, file string, data []byte) (*Loaded, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Line: max(doc.Line, 1), Field: "(document)", Msg: "want a mapping with input, processors and outputs"}
	}
	return l.LoadNode(ctx, file, "", doc.Content[0])
}

// LoadNode is Load for a definition already parsed: def is its mapping,
// found in file at the field path (a definition inside another file,
// such as the server's configuration; "" at the top of its own file), so
// that errors name that file, line and field.
func (l *Loader) LoadNode(ctx context.Context, file, path string, def *yaml.Node) (*Loaded, error) {
	if def.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: max(def.Line, 1), Field: cmpOr(path, "(document)"), Msg: "want a mapping with input, processors and outputs"}
	}
	var errs []error
	b := &build{l: l, ctx: ctx, loaded: &Loaded{}}
	root := &Node{file: file, path: path, n: def, errs: &errs, used: map[string]bool{}, closers: &b.loaded.closers}
	b.loaded.Pipeline = b.pipelineSettings(root.Map("pipeline"))
	src := b.input(root)
	outs := b.outputs(root)
	stages := b.processors(root, outs)
	root.Done()
	if len(errs) == 0 {
		b.wire(src, stages, outs)
		b.loaded.drain = b.drain
		if err := b.loaded.Pipeline.Build(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
		}
	}
	if len(errs) > 0 {
		_ = b.loaded.Close()
		return nil, errors.Join(errs...)
	}
	return b.loaded, nil
}

type build struct {
	l      *Loader
	ctx    context.Context
	loaded *Loaded
	drain  time.Duration
}

type output struct {
	name  string
	stage *pipeline.Stage
}

type proc struct {
	stage *pipeline.Stage
	route []routeCase // for a route: case key → output name
	dflt  string
}

type routeCase struct{ key, output string }

func (b *build) pipelineSettings(n *Node) *pipeline.Pipeline {
	if n == nil {
		return pipeline.New()
	}
	defer n.Done()
	var opts []pipeline.PipelineOption
	if v := n.Int("max_in_flight", 0); v != 0 {
		opts = append(opts, pipeline.WithMaxInFlight(v))
	}
	if v := n.Int("queue", 0); v != 0 {
		opts = append(opts, pipeline.WithQueue(v))
	}
	if v := n.Duration("shutdown_timeout", 0); v != 0 {
		opts = append(opts, pipeline.WithShutdownTimeout(v))
		b.drain = v
	}
	return pipeline.New(opts...)
}

func (b *build) input(root *Node) *pipeline.Node {
	n := root.Map("input")
	if n == nil {
		root.Errorf("", "input is required")
		return nil
	}
	defer n.Done()
	if in, ok := b.inputKind(n); ok {
		return in
	}
	url, topic := n.String("url", true), n.String("topic", true)
	var opts []eventkit.SubscribeOption
	if g := n.String("group", false); g != "" {
		opts = append(opts, eventkit.WithGroup(g))
	}
	if n.Bool("from_start") {
		opts = append(opts, eventkit.FromStart())
	}
	if v := n.Int("buffer", 0); v > 0 {
		opts = append(opts, eventkit.WithBuffer(v))
	}
	types := eventTypes(n.Strings("types"))
	if url == "" || topic == "" {
		return nil
	}
	sub, err := b.l.Transports.Subscriber(b.ctx, url)
	if err != nil {
		n.Errorf("url", "%v", err)
		return nil
	}
	b.loaded.closers = append(b.loaded.closers, sub.Close)
	return b.loaded.Pipeline.From(pipeline.Source{Name: "input", Subscriber: sub, Pattern: topic, Options: opts, Produces: types})
}

// inputKind builds an input of a registered kind (input: {http: ...}),
// or reports false when the input has no kind key (a transport URL).
func (b *build) inputKind(n *Node) (*pipeline.Node, bool) {
	var kinds []string
	for i := 0; i+1 < len(n.n.Content); i += 2 {
		if k := n.n.Content[i].Value; b.l.Inputs[k] != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return nil, false
	}
	if len(kinds) > 1 {
		n.Errorf("", "want one input kind, got %v", kinds)
		return nil, true
	}
	settings := n.Map(kinds[0])
	if settings == nil {
		return nil, true
	}
	types := eventTypes(n.Strings("types"))
	in := b.l.Inputs[kinds[0]](settings)
	settings.Done()
	if in == nil {
		return nil, true
	}
	if in.Close != nil {
		b.loaded.closers = append(b.loaded.closers, in.Close)
	}
	in.Source.Name = "input"
	if types != nil {
		in.Source.Produces = types
	}
	b.loaded.producer = in.Run
	return b.loaded.Pipeline.From(in.Source), true
}

func eventTypes(names []string) []pipeline.EventType {
	var out []pipeline.EventType
	for _, s := range names {
		out = append(out, pipeline.EventType{Type: s})
	}
	return out
}

func (b *build) outputs(root *Node) []output {
	list := root.List("outputs")
	if len(list) == 0 {
		root.Errorf("", "outputs is required: at least one output")
	}
	var outs []output
	for i, n := range list {
		name := n.String("name", false)
		if name == "" {
			name = fmt.Sprintf("output%d", i)
		}
		url, topic := n.String("url", true), n.String("topic", false)
		batch, wait := n.Int("batch", 0), n.Duration("batch_wait", 10*time.Millisecond)
		opts := b.common(n)
		n.Done()
		if url == "" {
			continue
		}
		if slices.ContainsFunc(outs, func(o output) bool { return o.name == name }) {
			n.Errorf("name", "output %q given twice", name)
			continue
		}
		pub := b.publisher(n, url)
		if pub == nil {
			continue
		}
		var s *pipeline.Stage
		if batch > 0 {
			s = pipeline.PublishBatch(name, pub, topic, batch, wait, opts...)
		} else {
			s = pipeline.Publish(name, pub, topic, opts...)
		}
		outs = append(outs, output{name: name, stage: s})
	}
	return outs
}

// common reads the settings every processor and output has.
func (b *build) common(n *Node) []pipeline.Option {
	var opts []pipeline.Option
	if v := n.Int("workers", 1); v != 1 {
		if v < 1 {
			n.Errorf("workers", "must be at least 1, got %d", v)
		}
		opts = append(opts, pipeline.Workers(v))
	}
	if n.Bool("ordered") {
		opts = append(opts, pipeline.OrderedByKey())
	}
	if v := n.Int("queue", 0); v != 0 {
		opts = append(opts, pipeline.Queue(v))
	}
	if t := eventTypes(n.Strings("consumes")); t != nil {
		opts = append(opts, pipeline.Consumes(t...))
	}
	if n.Has("produces") {
		opts = append(opts, pipeline.Produces(eventTypes(n.Strings("produces"))...))
	}
	var mw []eventkit.Middleware
	if dl := n.Map("dead_letter"); dl != nil {
		if m := b.deadLetter(dl); m != nil {
			mw = append(mw, m)
		}
	}
	if r := n.Map("retry"); r != nil {
		ropts := []middleware.RetryOption{middleware.MaxAttempts(r.Int("max_attempts", 3))}
		if d := r.Duration("backoff", 0); d > 0 {
			ropts = append(ropts, middleware.Backoff(d, r.Duration("max_backoff", 10*d), 2))
		}
		r.Done()
		mw = append(mw, middleware.Retry(ropts...))
	}
	if d := n.Duration("timeout", 0); d > 0 {
		mw = append(mw, middleware.Timeout(d))
	}
	if len(mw) > 0 {
		opts = append(opts, pipeline.Use(mw...))
	}
	return opts
}

// publisher opens the publisher of n's url, closed with the Loaded; nil
// (an error of n's url field) when it cannot.
func (b *build) publisher(n *Node, url string) eventkit.Publisher {
	pub, err := b.l.Transports.Publisher(b.ctx, url)
	if err != nil {
		n.Errorf("url", "%v", err)
		return nil
	}
	b.loaded.closers = append(b.loaded.closers, pub.Close)
	return pub
}

// deadLetter builds the dead_letter setting: {url:, topic:, after:}.
// It is the outermost middleware: it keeps what retry gave up on and the
// permanent errors, so that the source message is acked, not lost.
func (b *build) deadLetter(n *Node) eventkit.Middleware {
	defer n.Done()
	url, topic, after := n.String("url", true), n.String("topic", false), n.Int("after", 0)
	if url == "" {
		return nil
	}
	pub := b.publisher(n, url)
	if pub == nil {
		return nil
	}
	var opts []middleware.DeadLetterOption
	if topic != "" {
		opts = append(opts, middleware.DeadLetterTopic(func(string) string { return topic }))
	}
	if after > 0 {
		opts = append(opts, middleware.DeadLetterAfter(after))
	}
	return middleware.DeadLetter(pub, opts...)
}

func (b *build) processors(root *Node, outs []output) []proc {
	var procs []proc
	names := map[string]bool{}
	for _, o := range outs {
		names[o.name] = true
	}
	list := root.List("processors")
	for i, n := range list {
		name := n.String("name", false)
		if name == "" {
			name = fmt.Sprintf("processor%d", i)
		}
		if names[name] {
			n.Errorf("name", "the name %q is used twice", name)
		}
		names[name] = true
		p := b.processor(name, n, outs, i == len(list)-1)
		n.Done()
		if p.stage != nil {
			procs = append(procs, p)
		}
	}
	return procs
}

// processor builds one processor from the one kind key it has.
func (b *build) processor(name string, n *Node, outs []output, last bool) proc {
	opts := b.common(n)
	var kinds []string
	for i := 0; i+1 < len(n.n.Content); i += 2 {
		k := n.n.Content[i].Value
		if slices.Contains(builtinKinds, k) || b.l.Kinds[k] != nil {
			kinds = append(kinds, k)
			n.used[k] = true
		}
	}
	if len(kinds) != 1 {
		known := slices.Concat(builtinKinds, slices.Sorted(mapKeys(b.l.Kinds)))
		n.Errorf("", "want exactly one processor kind (%v), got %v", known, kinds)
		return proc{}
	}
	k := kinds[0]
	settings := n.Map(k)
	if settings == nil {
		return proc{}
	}
	defer settings.Done()
	switch k {
	case "map", "split":
		fn := b.function(settings)
		if fn == nil {
			return proc{}
		}
		return proc{stage: pipeline.Process(name, fn, opts...)}
	case "filter":
		return proc{stage: filterStage(name, settings, opts)}
	case "enrich":
		return proc{stage: b.enrichStage(name, settings, opts)}
	case "batch":
		return proc{stage: pipeline.Batch(name, settings.Int("size", 100), settings.Duration("wait", 10*time.Millisecond),
			func(_ context.Context, evs []event.Event) ([]event.Event, error) { return evs, nil }, opts...)}
	case "route":
		return b.routeStage(name, settings, outs, last, opts)
	}
	return proc{stage: b.l.Kinds[k](name, settings, opts)}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (b *build) function(n *Node) Function {
	fname := n.String("function", true)
	if fname == "" {
		return nil
	}
	fn := b.l.Functions[fname]
	if fn == nil {
		n.Errorf("function", "no function %q is registered (registered: %v)", fname, slices.Sorted(mapKeys(b.l.Functions)))
	}
	return fn
}

// filterStage keeps the events whose attributes have the given values.
func filterStage(name string, n *Node, opts []pipeline.Option) *pipeline.Stage {
	want := n.StringMap("attributes")
	if len(want) == 0 {
		n.Errorf("", "attributes is required: the attribute values an event must have to pass")
		return nil
	}
	return pipeline.Filter(name, func(e event.Event) (bool, error) {
		for _, kv := range want {
			if attribute(e, kv[0]) != kv[1] {
				return false, nil
			}
		}
		return true, nil
	}, opts...)
}

// attribute returns a context attribute or extension of e as a string.
func attribute(e event.Event, name string) string {
	switch name {
	case "id":
		return e.ID()
	case "source":
		return e.Source()
	case "type":
		return e.Type()
	case "subject":
		return e.Subject()
	case "datacontenttype":
		return e.DataContentType()
	case "dataschema":
		return e.DataSchema()
	case "specversion":
		return e.SpecVersion()
	}
	if v, ok := e.Extensions()[name]; ok {
		return fmt.Sprint(v)
	}
	return ""
}

func (b *build) routeStage(name string, n *Node, outs []output, last bool, opts []pipeline.Option) proc {
	if !last {
		n.Errorf("", "a route must be the last processor: its cases name outputs")
	}
	attr := n.String("attribute", true)
	p := proc{dflt: n.String("default", false)}
	has := func(o string) bool { return slices.ContainsFunc(outs, func(x output) bool { return x.name == o }) }
	for _, kv := range n.StringMap("cases") {
		if !has(kv[1]) {
			n.Errorf("cases", "case %q names the output %q, which is not defined", kv[0], kv[1])
		}
		p.route = append(p.route, routeCase{key: kv[0], output: kv[1]})
	}
	if p.dflt != "" && !has(p.dflt) {
		n.Errorf("default", "no output named %q", p.dflt)
	}
	if len(p.route) == 0 {
		n.Errorf("", "cases is required")
	}
	to := map[string]string{}
	for _, c := range p.route {
		to[c.key] = c.output
	}
	dflt := p.dflt
	p.stage = pipeline.Route(name, func(e event.Event) string {
		if o, ok := to[attribute(e, attr)]; ok {
			return o
		}
		return dflt
	}, opts...)
	for _, o := range outs {
		if o.name != dflt && !slices.ContainsFunc(p.route, func(c routeCase) bool { return c.output == o.name }) {
			n.Errorf("", "the output %q is not reached by any case nor the default", o.name)
		}
	}
	return p
}

// wire connects input → processors → outputs: a route sends each event to
// the output its case names, else the last processor fans out to every
// output.
func (b *build) wire(src *pipeline.Node, procs []proc, outs []output) {
	cur := src
	for _, p := range procs {
		cur = cur.Then(p.stage)
		if p.route == nil {
			continue
		}
		// The route's key is the output's name (see routeStage).
		for _, o := range outs {
			cur.Case(o.name, o.stage)
		}
		return
	}
	for _, o := range outs {
		cur.Then(o.stage)
	}
}

// Fixed is Transports that opens every URL on the same Subscriber and
// Publisher (one bus in a test, or a program that has its transports
// already). What it returns does not close them: the caller does.
type Fixed struct {
	Sub eventkit.Subscriber
	Pub eventkit.Publisher
}

type keptSubscriber struct{ eventkit.Subscriber }

func (keptSubscriber) Close() error { return nil }

type keptPublisher struct{ eventkit.Publisher }

func (keptPublisher) Close() error { return nil }

// Subscriber returns f.Sub, whatever the URL.
func (f Fixed) Subscriber(context.Context, string) (eventkit.Subscriber, error) {
	return keptSubscriber{f.Sub}, nil
}

// Publisher returns f.Pub, whatever the URL.
func (f Fixed) Publisher(context.Context, string) (eventkit.Publisher, error) {
	return keptPublisher{f.Pub}, nil
}
