package pipeline

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
)

func testNode(bound, size int) (*runState, *runNode) {
	rs := &runState{kill: make(chan struct{})}
	rn := &runNode{in: make(chan *batch, bound), size: size, bound: bound, room: make(chan struct{}, 1), stats: &nodeStats{}}
	rs.nodes = []*runNode{rn}
	return rs, rn
}

func batchOf(ids ...string) *batch {
	b := getBatch()
	for _, id := range ids {
		b.items = append(b.items, item{ev: eventkittest.NewEvent(id)})
	}
	return b
}

// A queue's bound counts events, whatever the size of the batches they
// came in: batches of one fill it up to the bound (with batches counted,
// the source of TestShutdownDrains stopped short of its in-flight bound),
// and a sender waits only past it, until a worker takes a batch.
func TestQueueBoundCountsEvents(t *testing.T) {
	rs, rn := testNode(8, 2)
	for i := range 8 {
		rs.send(rn, batchOf(string(rune('a'+i))))
	}
	if rn.queued.Load() != 8 {
		t.Fatalf("%d events queued; want 8", rn.queued.Load())
	}
	sent := make(chan struct{})
	go func() { rs.send(rn, batchOf("i", "j")); close(sent) }()
	deadline := time.Now().Add(10 * time.Second)
	for rn.stats.waiters.Load() == 0 { // the sender waits for room
		if time.Now().After(deadline) {
			t.Fatal("the sender past the bound did not wait")
		}
		time.Sleep(time.Millisecond)
	}
	rn.received(<-rn.in) // one event out: not room for two
	select {
	case <-sent:
		t.Fatal("a batch of two went into room for one")
	case <-time.After(20 * time.Millisecond):
	}
	rn.received(<-rn.in)
	<-sent
	if q := rn.queued.Load(); q != 8 {
		t.Fatalf("%d events queued; want 8", q)
	}
}

// An emitter sends a node's events in batches of the node's size, in
// order, and the rest when flushed; it counts its outputs before it sends
// them, so that no stage downstream is seen ahead of its sender.
func TestEmitterSendsBatches(t *testing.T) {
	rs, rn := testNode(16, 3)
	node := &Node{stats: &nodeStats{run: rn}}
	var out atomic.Uint64
	em := rs.newEmitter(&out)
	for i := range 7 {
		em.emit(nil, "", 1, []eventItem{{ev: eventkittest.NewEvent(string(rune('a' + i))), node: node}})
		if i == 5 && (len(rn.in) != 2 || rn.queued.Load() != 6 || out.Load() != 6) {
			t.Fatalf("%d batches, %d events queued, %d counted out after 6; want 2 full batches of 3, counted", len(rn.in), rn.queued.Load(), out.Load())
		}
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
	if got != "abcdefg" || len(sizes) != 3 || sizes[2] != 1 || rn.queued.Load() != 0 || out.Load() != 7 {
		t.Fatalf("received %q in batches %v, %d left counted, %d out; want abcdefg in 3, 3, 1, 7 out", got, sizes, rn.queued.Load(), out.Load())
	}
}
