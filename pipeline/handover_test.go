package pipeline

import (
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
)

// A queue's bound counts events: the hand-over batches it holds, full,
// never exceed it, and it holds a few of them.
func TestHandOverBoundCountsEvents(t *testing.T) {
	for _, q := range []int{1, 2, 3, 7, 10, 64, 100, 256, 1000, 4096} {
		size, batches := handOver(q)
		if size < 1 || size > maxHandOver || batches < 1 || size*batches > q {
			t.Errorf("handOver(%d) = %d events × %d batches; want at most %d events, batches of 1..%d", q, size, batches, q, maxHandOver)
		}
		if q >= 4 && batches < 4 {
			t.Errorf("handOver(%d) = %d batches; want at least 4", q, batches)
		}
	}
}

// An emitter sends a node's events in batches of the node's size, in
// order, and the rest when flushed; the queue's depth counts events.
func TestEmitterSendsBatches(t *testing.T) {
	rs := &runState{kill: make(chan struct{})}
	rn := &runNode{in: make(chan *batch, 4), size: 3, stats: &nodeStats{}}
	rs.nodes = []*runNode{rn}
	em := rs.newEmitter()
	for i := range 7 {
		em.add(rn, item{ev: eventkittest.NewEvent(string(rune('a' + i)))})
	}
	if len(rn.in) != 2 || rn.queued.Load() != 6 {
		t.Fatalf("%d batches, %d events queued before the flush; want 2 full batches of 3", len(rn.in), rn.queued.Load())
	}
	em.flush()
	var got string
	var sizes []int
	for len(rn.in) > 0 {
		b := <-rn.in
		rn.received(b)
		sizes = append(sizes, len(b.items))
		for _, it := range b.items {
			got += it.ev.ID()
		}
	}
	if got != "abcdefg" || len(sizes) != 3 || sizes[2] != 1 || rn.queued.Load() != 0 {
		t.Fatalf("received %q in batches %v, %d left counted; want abcdefg in 3, 3, 1", got, sizes, rn.queued.Load())
	}
}
