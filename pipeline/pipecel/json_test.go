package pipecel

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/cel-go/common/types"
)

// encode writes what encoding/json writes for the same value: escapes,
// number formats, sorted keys, nesting.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", `quote " backslash \ slash /`, "<a&b>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "line\u2028para\u2029", "bad \xff utf-8 \xc3", "é ü 日本 🎉",
		0.0, math.Copysign(0, -1), 0.1, -2.5, 1e-6, 1e-7, 1.5e-9, 1e20, 1e21, 123456789.0, 1e300,
		int64(0), int64(-42), int64(math.MaxInt64), uint64(math.MaxUint64),
		[]any{}, []any{1.0, "x", nil, []any{true}},
		map[string]any{}, map[string]any{"z": 1.0, "a": map[string]any{"y": []any{"<"}, "b": false}, "m": nil},
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encode(types.DefaultTypeAdapter.NativeToValue(v))
		if err != nil || string(got) != string(want) {
			t.Errorf("encode(%#v) = %s, %v; want %s", v, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		if _, err := encode(types.Double(f)); err == nil {
			t.Errorf("encode(%v): no error", f)
		}
	}
}
