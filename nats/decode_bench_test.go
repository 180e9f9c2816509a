package nats_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
)

// BenchmarkDecodeMsg decodes a binary-mode message as a subscription
// receives it (header keys in nats.go's canonical form).
func BenchmarkDecodeMsg(b *testing.B) {
	e := eventkittest.NewEvent("bench-1")
	m, err := eknats.EncodeMsg("bench.x", e, eventkit.Binary)
	if err != nil {
		b.Fatal(err)
	}
	h := nats.Header{}
	for k, vs := range m.Header {
		for _, v := range vs {
			h.Add(k, v) // canonical form, as nats.go delivers it
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eknats.DecodeMsg(h, m.Data); err != nil {
			b.Fatal(err)
		}
	}
}
