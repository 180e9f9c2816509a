package es

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
)

// VersionExtension is the CloudEvents extension attribute that holds the
// version of an event's data schema (an integer, 1 when absent).
const VersionExtension = "dataversion"

// ErrUnknownType is returned when an event's type is not registered.
var ErrUnknownType = errors.New("es: unknown event type")

// Upcaster turns an event at one data version into events at the next
// version: it may rename fields, change the type, or split the event into
// several. The returned events go on through the upcasters of their own type
// until they reach that type's current version.
type Upcaster func(e event.Event) ([]event.Event, error)

// Registry maps CloudEvents types to Go types (both ways), with the current
// data version of each type and the upcasters from older versions. Data is
// JSON. It is safe for concurrent use once filled.
type Registry struct {
	mu        sync.RWMutex
	byName    map[string]*typeInfo
	byGo      map[reflect.Type]*typeInfo
	upcasters map[string]map[int]Upcaster
}

type typeInfo struct {
	name    string
	goType  reflect.Type
	version int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*typeInfo{}, byGo: map[reflect.Type]*typeInfo{}, upcasters: map[string]map[int]Upcaster{}}
}

// TypeOption configures Register.
type TypeOption func(*typeInfo)

// WithVersion sets the current data version of a type (default 1).
func WithVersion(v int) TypeOption { return func(t *typeInfo) { t.version = v } }

// Register maps the CloudEvents type name to the Go type T (a struct value
// type, encoded as JSON). Registering a name or a Go type twice replaces the
// earlier mapping.
func Register[T any](r *Registry, name string, opts ...TypeOption) {
	ti := &typeInfo{name: name, goType: reflect.TypeFor[T](), version: 1}
	for _, o := range opts {
		o(ti)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[name] = ti
	r.byGo[ti.goType] = ti
}

// Upcast registers fn to turn events of type name at data version from
// into the next version.
func (r *Registry) Upcast(name string, from int, fn Upcaster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.upcasters[name] == nil {
		r.upcasters[name] = map[int]Upcaster{}
	}
	r.upcasters[name][from] = fn
}

// TypeName returns the registered CloudEvents type of data's Go type.
func (r *Registry) TypeName(data any) (string, error) {
	ti, err := r.infoOf(data)
	if err != nil {
		return "", err
	}
	return ti.name, nil
}

func (r *Registry) infoOf(data any) (*typeInfo, error) {
	t := reflect.TypeOf(data)
	r.mu.RLock()
	ti := r.byGo[t]
	if ti == nil && t != nil && t.Kind() == reflect.Pointer {
		ti = r.byGo[t.Elem()]
	}
	r.mu.RUnlock()
	if ti == nil {
		return nil, fmt.Errorf("%w: Go type %v is not registered", ErrUnknownType, t)
	}
	return ti, nil
}

// Event builds a CloudEvent carrying data: its registered type, its
// current data version (extension dataversion), JSON data, and the given
// id and source. The caller sets subject, time and other attributes.
func (r *Registry) Event(id, source string, data any) (event.Event, error) {
	ti, err := r.infoOf(data)
	if err != nil {
		return event.Event{}, err
	}
	e := event.New()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(ti.name)
	if ti.version != 1 {
		e.SetExtension(VersionExtension, ti.version)
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return event.Event{}, fmt.Errorf("es: encode %s: %w", ti.name, err)
	}
	return e, nil
}

// DataVersion returns the data version of e (extension dataversion; 1
// when absent).
func DataVersion(e *event.Event) int {
	v, ok := e.Extensions()[VersionExtension]
	if !ok {
		return 1
	}
	switch x := v.(type) {
	case int32:
		return int(x)
	case int:
		return x
	case int64:
		return int(x)
	case string:
		n, err := strconv.Atoi(x)
		if err == nil {
			return n
		}
	}
	return 1
}

// Upgrade runs e through the upcasters until every resulting event is at
// its type's current version. Events of unregistered types, or already
// current, come back unchanged.
func (r *Registry) Upgrade(e event.Event) ([]event.Event, error) {
	var out []event.Event
	if err := r.upgrade(e, &out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Registry) upgrade(e event.Event, out *[]event.Event, depth int) error {
	if depth > 64 {
		return fmt.Errorf("es: upcasting %s loops", e.Type())
	}
	r.mu.RLock()
	ti := r.byName[e.Type()]
	ups := r.upcasters[e.Type()]
	r.mu.RUnlock()
	v := DataVersion(&e)
	if ti == nil || v >= ti.version {
		*out = append(*out, e)
		return nil
	}
	fn := ups[v]
	if fn == nil {
		return fmt.Errorf("es: no upcaster for %s from version %d to %d", e.Type(), v, ti.version)
	}
	next, err := fn(e.Clone())
	if err != nil {
		return fmt.Errorf("es: upcast %s v%d: %w", e.Type(), v, err)
	}
	for _, n := range next {
		if n.Type() == e.Type() && DataVersion(&n) <= v {
			n.SetExtension(VersionExtension, v+1)
		}
		if err := r.upgrade(n, out, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Decode upgrades e and decodes the data of each resulting event into its
// registered Go type (values, not pointers).
func (r *Registry) Decode(e event.Event) ([]any, error) {
	evs, err := r.Upgrade(e)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(evs))
	for i := range evs {
		d, err := r.decodeOne(&evs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (r *Registry) decodeOne(e *event.Event) (any, error) {
	r.mu.RLock()
	ti := r.byName[e.Type()]
	r.mu.RUnlock()
	if ti == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type())
	}
	p := reflect.New(ti.goType)
	if data := e.Data(); len(data) > 0 {
		if err := json.Unmarshal(data, p.Interface()); err != nil {
			return nil, fmt.Errorf("es: decode %s (id %s): %w", e.Type(), e.ID(), err)
		}
	}
	return p.Elem().Interface(), nil
}

// RenameField returns an upcaster that renames the top-level JSON field
// from to to in the event's data; a helper for the common case.
func RenameField(from, to string) Upcaster {
	return func(e event.Event) ([]event.Event, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(e.Data(), &m); err != nil {
			return nil, err
		}
		if v, ok := m[from]; ok {
			delete(m, from)
			m[to] = v
		}
		if err := e.SetData(event.ApplicationJSON, m); err != nil {
			return nil, err
		}
		return []event.Event{e}, nil
	}
}
