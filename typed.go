package eventkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Typed returns a Handler that decodes the event's data into a T and calls
// fn with it. JSON data (datacontenttype absent, */json or */*+json) is
// decoded with encoding/json; for other content types T must be []byte or
// string, which receive the data as is. Data that does not decode fails
// with a *DecodeError marked Permanent, so that retry middleware does not
// retry it and dead-letter middleware dead-letters it.
func Typed[T any](fn func(ctx context.Context, m *Message, data T) error) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) error {
		var v T
		if err := DecodeData(m.Event, &v); err != nil {
			return Permanent(err)
		}
		return fn(ctx, m, v)
	})
}

// DecodeData decodes e's data into the value v points to, by the rules of
// Typed. Errors are *DecodeError.
func DecodeData(e event.Event, v any) error {
	ct := e.DataContentType()
	fail := func(err error) error {
		return &DecodeError{Type: e.Type(), ContentType: ct, Target: fmt.Sprintf("%T", v), Err: err}
	}
	data := e.Data()
	switch p := v.(type) {
	case *[]byte:
		*p = append([]byte(nil), data...)
		return nil
	case *string:
		if !IsJSONContentType(ct) || len(data) == 0 || data[0] != '"' {
			*p = string(data)
			return nil
		}
	}
	if !IsJSONContentType(ct) {
		return fail(errors.New("data is not JSON; use []byte or string as the type"))
	}
	if len(data) == 0 {
		return fail(errors.New("event has no data"))
	}
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fail(errors.New("target must be a non-nil pointer"))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fail(err)
	}
	return nil
}
