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
	m := asRead(vals)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(m); err != nil {
			b.Fatal(err)
		}
	}
}
