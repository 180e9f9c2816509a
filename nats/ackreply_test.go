package nats

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
)

// ackReplyMeta must read what nats.go's own parser reads, for both forms
// of the reply subject, and refuse what it refuses.
func TestAckReplyMetaMatchesNatsGo(t *testing.T) {
	for _, reply := range []string{
		"$JS.ACK.ORDERS.eventkit_1.3.1042.17.1700000000000000000.5",
		"$JS.ACK._.ABCHASH.ORDERS.grp.1.9.9.1700000000000000000.0.RAND",
		"$JS.ACK.dom.ABCHASH.ORDERS.grp.12.18446744073709551615.9.1700000000000000000.0",
		"$JS.ACK.dom.ABCHASH.ORDERS.grp.2.77.9.1700000000000000000.0.RAND.EXTRA",
		"$JS.ACK.ORDERS.grp.3.x.1.1.1",
		"$JS.ACK.ORDERS.grp.3.4.1.1",
		"$JS.ACK.ORDERS.grp.3.0042.1.1.1",
		"$JS.ACK.a.b.c.d.e.f.g.h",
		"$JS.NAK.ORDERS.grp.3.4.1.1.1",
		"",
	} {
		seq, delivered, text, ok := ackReplyMeta(reply)
		meta, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata()
		if !ok {
			continue // the caller falls back to nats.go's parser
		}
		if err != nil {
			t.Fatalf("%q: accepted here, refused by nats.go: %v", reply, err)
		}
		if seq != meta.Sequence.Stream || delivered != meta.NumDelivered {
			t.Fatalf("%q: got seq %d delivered %d, nats.go says %d and %d", reply, seq, delivered, meta.Sequence.Stream, meta.NumDelivered)
		}
		if want := strconv.FormatUint(seq, 10); text != want {
			t.Fatalf("%q: sequence text %q, want %q", reply, text, want)
		}
	}
	for _, good := range []string{
		"$JS.ACK.ORDERS.eventkit_1.3.1042.17.1700000000000000000.5",
		"$JS.ACK._.ABCHASH.ORDERS.grp.1.9.9.1700000000000000000.0.RAND",
		"$JS.ACK.dom.ABCHASH.ORDERS.grp.12.18446744073709551615.9.1700000000000000000.0",
	} {
		if _, _, _, ok := ackReplyMeta(good); !ok {
			t.Fatalf("%q refused", good)
		}
	}
}

func TestFifo(t *testing.T) {
	var f fifo
	if f.pop() != nil || f.peek() != nil || f.len() != 0 {
		t.Fatal("empty fifo not empty")
	}
	ds := make([]*delivery, 100)
	for i := range ds {
		ds[i] = &delivery{}
	}
	next, popped := 0, 0
	for round := 0; round < 50; round++ {
		for k := 0; k < 3 && next < len(ds); k++ {
			f.push(ds[next])
			next++
		}
		for k := 0; k < 2; k++ {
			if f.peek() != ds[popped] {
				t.Fatalf("peek: not the oldest")
			}
			if d := f.pop(); d != ds[popped] {
				t.Fatalf("pop %d: wrong order", popped)
			}
			popped++
		}
		if f.len() != next-popped {
			t.Fatalf("len %d, want %d", f.len(), next-popped)
		}
	}
	for popped < next {
		if f.pop() != ds[popped] {
			t.Fatal("drain order")
		}
		popped++
	}
	if f.pop() != nil || f.len() != 0 {
		t.Fatal("not empty after draining")
	}
}
