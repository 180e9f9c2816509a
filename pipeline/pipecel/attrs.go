package pipecel

import (
	"fmt"
	"reflect"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// attrs is the event variable: a map of strings whose entries are read
// from the event when the expression looks one up (event.type, 'x' in
// event); the whole map is built only for what needs all of it (size,
// iteration, equality, conversion).
type attrs struct {
	e    event.Event
	full traits.Mapper
}

var _ traits.Mapper = (*attrs)(nil)

func (a *attrs) all() traits.Mapper {
	if a.full == nil {
		a.full = types.NewStringStringMap(types.DefaultTypeAdapter, attributes(a.e))
	}
	return a.full
}

// lookup is attributes(e)[k] without the map.
func (a *attrs) lookup(k string) (string, bool) {
	e := a.e
	if v, ok := e.Extensions()[k]; ok { // as in attributes: after the context attributes
		return fmt.Sprint(v), true
	}
	if f, ok := contextAttributes[k]; ok {
		return f(e), true
	}
	if k == "time" && !e.Time().IsZero() {
		return e.Time().Format(timeFormat), true
	}
	return "", false
}

func (a *attrs) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return a.all().Find(key)
	}
	v, found := a.lookup(string(k))
	if !found {
		return nil, false
	}
	return types.String(v), true
}

func (a *attrs) Get(key ref.Val) ref.Val {
	if v, found := a.Find(key); found {
		return v
	}
	return a.all().Get(key) // the error a map gives
}

func (a *attrs) Contains(key ref.Val) ref.Val {
	_, found := a.Find(key)
	return types.Bool(found)
}

func (a *attrs) Iterator() traits.Iterator                   { return a.all().Iterator() }
func (a *attrs) Size() ref.Val                               { return a.all().Size() }
func (a *attrs) ConvertToNative(t reflect.Type) (any, error) { return a.all().ConvertToNative(t) }
func (a *attrs) ConvertToType(t ref.Type) ref.Val            { return a.all().ConvertToType(t) }
func (a *attrs) Equal(other ref.Val) ref.Val                 { return a.all().Equal(other) }
func (a *attrs) Type() ref.Type                              { return types.MapType }
func (a *attrs) Value() any                                  { return a.all().Value() }
