// Package schema is eventkit's JSON Schema validation middleware, on
// github.com/santhosh-tekuri/jsonschema/v6: an event whose data does not
// satisfy its schema is refused as a permanent error (dead-lettered, never
// retried). It is a package of its own so that only the programs that
// validate link the JSON Schema library.
package schema

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/eventkit/eventkit"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Option configures Middleware.
type Option func(*config)

type schemaSource struct {
	key    string // event type or dataschema URL
	byType bool
	doc    []byte
}

type config struct {
	sources []schemaSource
	require bool
}

// ForType validates the data of events of type eventType against the JSON
// Schema doc (a JSON document).
func ForType(eventType string, doc []byte) Option {
	return func(c *config) {
		c.sources = append(c.sources, schemaSource{key: eventType, byType: true, doc: doc})
	}
}

// ForURL validates the data of events whose dataschema attribute is
// dataschema against the JSON Schema doc. Schemas are never fetched: each
// one must be given.
func ForURL(dataschema string, doc []byte) Option {
	return func(c *config) {
		c.sources = append(c.sources, schemaSource{key: dataschema, doc: doc})
	}
}

// Require rejects (as a permanent error) events for which no schema is
// known; by default they pass unvalidated.
func Require() Option { return func(c *config) { c.require = true } }

// Error reports an event whose data does not satisfy its schema (or that
// has no schema under Require, or no JSON data to validate). Middleware
// returns it marked Permanent.
type Error struct {
	ID     string // the event's id
	Type   string // the event's type
	Schema string // the schema used: the dataschema URL or "type:<type>"
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("event %q of type %q does not satisfy schema %s: %v", e.ID, e.Type, e.Schema, e.Err)
}

// Unwrap returns the validation error.
func (e *Error) Unwrap() error { return e.Err }

// Middleware validates each event's data against a JSON Schema
// (github.com/santhosh-tekuri/jsonschema/v6) before the next handler runs:
// the schema registered for the event's dataschema attribute if there is
// one, else the schema registered for its type. An event that fails is
// refused with an *Error marked Permanent, so that Retry does not
// retry it and DeadLetter dead-letters it at once. It returns an error if a
// schema does not compile.
func Middleware(opts ...Option) (eventkit.Middleware, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	comp := jsonschema.NewCompiler()
	byType := map[string]*jsonschema.Schema{}
	byURL := map[string]*jsonschema.Schema{}
	for _, s := range c.sources {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.doc))
		if err != nil {
			return nil, fmt.Errorf("schema: schema for %q: %w", s.key, err)
		}
		loc := s.key
		if s.byType {
			loc = "urn:eventkit:type:" + url.PathEscape(s.key)
		}
		if err := comp.AddResource(loc, doc); err != nil {
			return nil, fmt.Errorf("schema: schema for %q: %w", s.key, err)
		}
		sch, err := comp.Compile(loc)
		if err != nil {
			return nil, fmt.Errorf("schema: compile schema for %q: %w", s.key, err)
		}
		if s.byType {
			byType[s.key] = sch
		} else {
			byURL[s.key] = sch
		}
	}
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			e := m.Event
			var sch *jsonschema.Schema
			name := ""
			if ds := e.DataSchema(); ds != "" {
				if sch = byURL[ds]; sch != nil {
					name = ds
				}
			}
			if sch == nil {
				if sch = byType[e.Type()]; sch != nil {
					name = "type:" + e.Type()
				}
			}
			fail := func(err error) error {
				return eventkit.Permanent(&Error{ID: e.ID(), Type: e.Type(), Schema: name, Err: err})
			}
			if sch == nil {
				if c.require {
					return fail(errors.New("no schema registered for its type or dataschema"))
				}
				return next.Handle(ctx, m)
			}
			if !eventkit.IsJSONContentType(e.DataContentType()) {
				return fail(fmt.Errorf("datacontenttype %q is not JSON", e.DataContentType()))
			}
			data := e.Data()
			if len(data) == 0 {
				return fail(errors.New("event has no data"))
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				return fail(err)
			}
			if err := sch.Validate(v); err != nil {
				return fail(err)
			}
			return next.Handle(ctx, m)
		})
	}, nil
}
