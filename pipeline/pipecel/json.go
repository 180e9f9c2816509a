package pipecel

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit/internal/jsonstr"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"google.golang.org/protobuf/types/known/structpb"
)

// errOther marks a value appendJSON does not write itself.
var errOther = errors.New("pipecel: not a JSON value")

// encode returns v as JSON, as encoding/json writes the same value (map
// keys sorted, <, > and & escaped). The JSON kinds (null, bool, numbers,
// strings, lists, maps with string keys) are written directly from CEL's
// values; anything else (timestamps, bytes, messages) goes through
// protobuf's Value and encoding/json, as before.
func encode(v ref.Val) ([]byte, error) {
	b, err := appendJSON(make([]byte, 0, 64), v)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, errOther) {
		return nil, err
	}
	native, err := v.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, err
	}
	return json.Marshal(native.(*structpb.Value).AsInterface()) // encoding/json: stable output, unlike protojson
}

func appendJSON(b []byte, v ref.Val) ([]byte, error) {
	switch x := v.(type) {
	case types.Null:
		return append(b, "null"...), nil
	case types.Bool:
		return strconv.AppendBool(b, bool(x)), nil
	case types.String:
		return appendString(b, string(x)), nil
	case types.Double:
		return appendFloat(b, float64(x))
	case types.Int:
		// As a protobuf Value (a double) before: exact now.
		return strconv.AppendInt(b, int64(x), 10), nil
	case types.Uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case traits.Mapper:
		return appendMap(b, x)
	case traits.Lister:
		b = append(b, '[')
		n := int(x.Size().(types.Int))
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, x.Get(types.Int(i))); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return nil, errOther
}

// appendMap writes a map with string keys, sorted as encoding/json does.
func appendMap(b []byte, m traits.Mapper) ([]byte, error) {
	var keys []string
	for it := m.Iterator(); it.HasNext() == types.True; {
		k, ok := it.Next().(types.String)
		if !ok {
			return nil, errOther
		}
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		var err error
		if b, err = appendJSON(b, m.Get(types.String(k))); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendFloat writes f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendString writes s as a JSON string as encoding/json does: the few
// strings with characters it escapes its own way (HTML's <, > and &, \b
// and \f) go through it, the others through jsonstr.
func appendString(b []byte, s string) []byte {
	if strings.ContainsAny(s, "<>&\b\f") {
		q, _ := json.Marshal(s) // a string always encodes
		return append(b, q...)
	}
	return jsonstr.Append(b, s)
}
