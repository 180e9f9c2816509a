package redis

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func BenchmarkDecode(b *testing.B) {
	e := event.New()
	e.SetID("e-1")
	e.SetSource("urn:bench")
	e.SetType("bench.event")
	_ = e.SetData("application/json", []byte(`{"note":"`+strings.Repeat("x", 240)+`"}`))
	vals, _ := encode(e, false)
	m := map[string]any{}
	for i := 0; i < len(vals); i += 2 {
		switch v := vals[i+1].(type) {
		case []byte:
			m[vals[i].(string)] = string(v)
		default:
			m[vals[i].(string)] = v
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(m); err != nil {
			b.Fatal(err)
		}
	}
}
