package pipeline

import "sync"

// Events move between nodes in batches: a sender (a source's reader or a
// stage's worker) gathers the events it has for a node, up to the node's
// hand-over size, and sends them in one channel operation; a worker takes
// one batch, handles its events one by one and hands its outputs on the
// same way. A wake-up and a channel operation are paid per batch, not per
// event, and no event waits for a batch to fill: a sender sends what it has
// when its own input batch is done.

// maxHandOver bounds the events of one hand-over batch.
const maxHandOver = 64

// handOver returns the hand-over batch size and the channel capacity (in
// batches) of a queue bounded to q events: size × batches ≤ q, with at
// least a few batches of room so that a sender and the workers overlap.
func handOver(q int) (size, batches int) {
	size = min(maxHandOver, max(1, q/4))
	return size, q / size
}

// batch is one hand-over: events for one node, in the sender's order.
type batch struct{ items []item }

var batchPool = sync.Pool{New: func() any { return &batch{items: make([]item, 0, 8)} }}

func getBatch() *batch { return batchPool.Get().(*batch) }

// putBatch recycles b once nothing refers to its items. They are not
// cleared (that would cost a write barrier per pointer while the collector
// runs): the next use overwrites them, and the pool drops its batches at
// the next collections, so what they still point to is kept at most that
// long.
func putBatch(b *batch) {
	b.items = b.items[:0]
	batchPool.Put(b)
}

// emitter gathers one sender's outputs into a batch per receiving node.
type emitter struct {
	rs      *runState
	pending []*batch // by runNode.idx
	touched []int    // the indexes pending may hold a batch at
}

func (rs *runState) newEmitter() *emitter {
	return &emitter{rs: rs, pending: make([]*batch, len(rs.nodes))}
}

// add queues it for rn, sending rn's batch when it is full.
func (em *emitter) add(rn *runNode, it item) {
	b := em.pending[rn.idx]
	if b == nil {
		b = getBatch()
		em.pending[rn.idx] = b
		em.touched = append(em.touched, rn.idx)
	}
	b.items = append(b.items, it)
	if len(b.items) >= rn.size {
		em.pending[rn.idx] = nil
		em.rs.send(rn, b)
	}
}

// flush sends every batch gathered so far.
func (em *emitter) flush() {
	for _, i := range em.touched {
		if b := em.pending[i]; b != nil {
			em.pending[i] = nil
			em.rs.send(em.rs.nodes[i], b)
		}
	}
	em.touched = em.touched[:0]
}

// send puts b in rn's queue, counting the time it waited for room.
func (rs *runState) send(rn *runNode, b *batch) {
	n := int64(len(b.items))
	select {
	case rn.in <- b:
		rn.queued.Add(n)
		return
	default:
	}
	defer rn.stats.wait()()
	select {
	case rn.in <- b:
		rn.queued.Add(n)
	case <-rs.kill: // abandoned: its source messages stay unsettled
	}
}

// received counts b out of rn's queue.
func (rn *runNode) received(b *batch) { rn.queued.Add(-int64(len(b.items))) }
