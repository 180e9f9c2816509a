// Package pipecel filters and maps pipeline events with CEL expressions
// (github.com/google/cel-go), in its own package so that only its users
// link CEL.
//
// An expression sees two variables: event, the context attributes and
// extensions as a map of strings (event.type, event.subject,
// event.partitionkey, ...), and data, the event's data decoded as JSON
// (null when the event has none). Each is built only when the expression
// refers to it: event's entries are read from the event when looked up,
// and data is decoded once per evaluation; a map's result is
// written as JSON directly from CEL's values. Expressions are compiled and
// type-checked once, when the stage is made; each evaluation is bounded by
// a cost limit (DefaultCostLimit), so that no expression can run away.
// An evaluation that fails (a missing field, the cost limit) fails the
// event with a permanent error.
package pipecel

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"google.golang.org/protobuf/types/known/structpb"
)

// DefaultCostLimit bounds the cost of one evaluation (CEL's cost units).
const DefaultCostLimit = 1_000_000

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("event", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("data", cel.DynType),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// Program is a compiled expression.
type Program struct {
	expr      string
	prg       cel.Program
	usesEvent bool // the expression refers to event
	usesData  bool // ... to data
}

// Compile compiles and checks expr; want is the result type it must have
// (cel.BoolType for a filter, cel.DynType for anything).
func Compile(expr string, want *cel.Type, costLimit uint64) (*Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("cel: %q: %w", expr, iss.Err())
	}
	if want != cel.DynType && !ast.OutputType().IsAssignableType(want) && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("cel: %q gives %s, want %s", expr, ast.OutputType(), want)
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("cel: %q: %w", expr, err)
	}
	p := &Program{expr: expr, prg: prg}
	for _, r := range ast.NativeRep().ReferenceMap() {
		p.usesEvent = p.usesEvent || r.Name == "event"
		p.usesData = p.usesData || r.Name == "data"
	}
	return p, nil
}

// activation is the variables of one evaluation: only those the
// expression refers to are built.
type activation struct {
	event     attrs
	usesEvent bool
	data      any
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return &a.event, a.usesEvent
	case "data":
		return a.data, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

// contextAttributes are the context attributes event always has (""
// when unset); time is there only when set.
var contextAttributes = map[string]func(event.Event) string{
	"id": event.Event.ID, "source": event.Event.Source, "type": event.Event.Type, "subject": event.Event.Subject,
	"specversion": event.Event.SpecVersion, "datacontenttype": event.Event.DataContentType, "dataschema": event.Event.DataSchema,
}

// attributes returns the context attributes and extensions of e.
func attributes(e event.Event) map[string]string {
	attrs := make(map[string]string, len(contextAttributes)+1+len(e.Extensions()))
	for k, f := range contextAttributes {
		attrs[k] = f(e)
	}
	if !e.Time().IsZero() {
		attrs["time"] = e.Time().Format(timeFormat)
	}
	for k, v := range e.Extensions() {
		attrs[k] = fmt.Sprint(v)
	}
	return attrs
}

// eval evaluates the program on e and returns CEL's value.
func (p *Program) eval(e event.Event) (ref.Val, error) {
	var a activation
	if p.usesEvent {
		a.event.e, a.usesEvent = e, true
	}
	if p.usesData && len(e.Data()) > 0 {
		if err := json.Unmarshal(e.Data(), &a.data); err != nil {
			return nil, eventkit.Permanent(fmt.Errorf("cel: event %s: data is not JSON: %w", e.ID(), err))
		}
	}
	out, _, err := p.prg.Eval(&a)
	if err != nil {
		return nil, eventkit.Permanent(fmt.Errorf("cel: %q on event %s: %w", p.expr, e.ID(), err))
	}
	return out, nil
}

// Eval evaluates the program on e: a bool, or the value as a
// *structpb.Value.
func (p *Program) Eval(e event.Event) (any, error) {
	out, err := p.eval(e)
	if err != nil {
		return nil, err
	}
	if b, ok := out.Value().(bool); ok {
		return b, nil
	}
	native, err := out.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, eventkit.Permanent(fmt.Errorf("cel: %q on event %s: result: %w", p.expr, e.ID(), err))
	}
	return native, nil
}

// Filter returns a stage that passes the events for which expr (a
// boolean CEL expression) is true.
func Filter(name, expr string, opts ...pipeline.Option) (*pipeline.Stage, error) {
	p, err := Compile(expr, cel.BoolType, DefaultCostLimit)
	if err != nil {
		return nil, err
	}
	return pipeline.Filter(name, func(e event.Event) (bool, error) {
		v, err := p.eval(e)
		if err != nil {
			return false, err
		}
		b, ok := v.(types.Bool)
		if !ok {
			return false, eventkit.Permanent(fmt.Errorf("cel: %q gives no boolean", expr))
		}
		return bool(b), nil
	}, opts...), nil
}

// Map returns a stage that replaces each event's data by the value of expr
// (as JSON), and its type by typ unless typ is "".
func Map(name, expr, typ string, opts ...pipeline.Option) (*pipeline.Stage, error) {
	p, err := Compile(expr, cel.DynType, DefaultCostLimit)
	if err != nil {
		return nil, err
	}
	return pipeline.Map(name, func(_ context.Context, e event.Event) (event.Event, error) {
		v, err := p.eval(e)
		if err != nil {
			return e, err
		}
		b, err := encode(v)
		if err != nil {
			return e, eventkit.Permanent(fmt.Errorf("cel: %q: encode: %w", expr, err))
		}
		// The output has the input's attributes (its own copy) and the new
		// data; the input's data is not copied, only replaced.
		out := pipeline.CloneEvent(event.Event{Context: e.Context})
		if typ != "" {
			out.SetType(typ)
		}
		out.SetDataContentType(event.ApplicationJSON)
		out.DataEncoded = b
		return out, nil
	}, opts...), nil
}

// Kind is the "cel" processor kind of package pipeconf: a filter or a map.
//
//   - name: big
//     cel: {filter: "data.total > 100 && event.type == 'order.placed'"}
//   - name: summary
//     cel: {map: "{'id': data.id, 'total': data.total}", type: order.summary}
func Kind(name string, n *pipeconf.Node, opts []pipeline.Option) *pipeline.Stage {
	filter, mapExpr, typ := n.String("filter", false), n.String("map", false), n.String("type", false)
	switch {
	case (filter == "") == (mapExpr == ""):
		n.Errorf("", "want one of filter or map")
		return nil
	case filter != "":
		if typ != "" {
			n.Errorf("type", "a filter keeps the type")
		}
		s, err := Filter(name, filter, opts...)
		if err != nil {
			n.Errorf("filter", "%v", err)
		}
		return s
	}
	if typ != "" {
		opts = append(opts, pipeline.Produces(pipeline.EventType{Type: typ}))
	}
	s, err := Map(name, mapExpr, typ, opts...)
	if err != nil {
		n.Errorf("map", "%v", err)
	}
	return s
}

var _ pipeconf.Kind = Kind
