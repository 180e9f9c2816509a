// Package cesql filters pipeline events with CloudEvents SQL expressions
// (github.com/cloudevents/sdk-go/sql/v2), in its own package so that only
// its users link the SQL parser.
//
// An expression is parsed once, when the stage is made; an event passes
// when the expression evaluates to true. An expression that does not
// evaluate to a boolean, or fails on an event, fails that event with a
// permanent error (retrying cannot change the answer).
package cesql

import (
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cefilter"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
)

// Compile parses a CloudEvents SQL expression into a predicate (with
// cefilter.ParseSQL, which the Subscriptions API's "sql" filter uses too:
// a parser panic is an error, a string reading true or false counts as a
// boolean).
func Compile(expr string) (keep func(e event.Event) (bool, error), err error) {
	q, err := cefilter.ParseSQL(expr)
	if err != nil {
		return nil, fmt.Errorf("cesql: %q: %w", expr, err)
	}
	return func(e event.Event) (bool, error) {
		ok, err := q.Eval(e)
		if err != nil {
			return false, eventkit.Permanent(fmt.Errorf("cesql: %q on event %s: %w", expr, e.ID(), err))
		}
		return ok, nil
	}, nil
}

// Filter returns a stage that passes the events for which expr is true.
func Filter(name, expr string, opts ...pipeline.Option) (*pipeline.Stage, error) {
	keep, err := Compile(expr)
	if err != nil {
		return nil, err
	}
	return pipeline.Filter(name, keep, opts...), nil
}

// Kind is the "sql" processor kind of package pipeconf:
//
//   - name: big-orders
//     sql: {where: "type = 'order.placed' AND total > 100"}
func Kind(name string, n *pipeconf.Node, opts []pipeline.Option) *pipeline.Stage {
	expr := n.String("where", true)
	if expr == "" {
		return nil
	}
	s, err := Filter(name, expr, opts...)
	if err != nil {
		n.Errorf("where", "%v", err)
	}
	return s
}

var _ pipeconf.Kind = Kind
