package pipeline

import (
	"sync"
	"sync/atomic"
)

// Events move between nodes in batches: a sender (a source's reader or a
// stage's worker) gathers the events it has for a node, up to the node's
// hand-over size, and sends them in one channel operation; a worker takes
// one batch, handles its events one by one and hands its outputs on the
// same way. A wake-up and a channel operation are paid per batch, not per
// event, and no event waits for a batch to fill: a sender sends what it has
// when its own input batch is done.

// maxHandOver bounds the events of one hand-over batch.
const maxHandOver = 64

// handOverSize returns the hand-over batch size of a queue bounded to q
// events: a quarter of it, so that a sender and the workers overlap.
func handOverSize(q int) int { return min(maxHandOver, max(1, q/4)) }

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
	// out counts the sender's outputs (nil for a source); uncounted are
	// those not yet added, which is done before any of them is sent.
	out       *atomic.Uint64
	uncounted uint64
}

func (rs *runState) newEmitter(out *atomic.Uint64) *emitter {
	return &emitter{rs: rs, pending: make([]*batch, len(rs.nodes)), out: out}
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
		em.count()
		em.rs.send(rn, b)
	}
}

// count adds the outputs not yet counted to the sender's stats: before they
// are sent, so that no stage downstream is seen ahead of it.
func (em *emitter) count() {
	if em.out != nil && em.uncounted > 0 {
		em.out.Add(em.uncounted)
	}
	em.uncounted = 0
}

// flush sends every batch gathered so far.
func (em *emitter) flush() {
	em.count()
	for _, i := range em.touched {
		if b := em.pending[i]; b != nil {
			em.pending[i] = nil
			em.rs.send(em.rs.nodes[i], b)
		}
	}
	em.touched = em.touched[:0]
}

// send puts b in rn's queue once its events fit in the queue's bound
// (a batch is never larger than the bound), counting the time it waited
// for room. The channel holds as many batches as the bound has events, so
// only the bound makes a sender wait.
func (rs *runState) send(rn *runNode, b *batch) {
	n := int64(len(b.items))
	if !rn.reserve(n) {
		defer rn.stats.wait()()
		for !rn.reserve(n) {
			rn.waiting.Add(1)
			if rn.reserve(n) { // room made before waiting was seen
				rn.waiting.Add(-1)
				break
			}
			select {
			case <-rn.room:
				rn.waiting.Add(-1)
			case <-rs.kill: // abandoned: its source messages stay unsettled
				rn.waiting.Add(-1)
				return
			}
		}
	}
	rn.in <- b
}

// reserve takes room for n events in rn's queue, if there is.
func (rn *runNode) reserve(n int64) bool {
	for {
		q := rn.queued.Load()
		if q > 0 && q+n > int64(rn.bound) {
			return false
		}
		if rn.queued.CompareAndSwap(q, q+n) {
			return true
		}
	}
}

// received counts b out of rn's queue and lets a waiting sender retry. A
// sender registers as waiting before it tries again, and this lowers the
// count before it looks for waiters: one of the two sees the other.
func (rn *runNode) received(b *batch) {
	rn.queued.Add(-int64(len(b.items)))
	if rn.waiting.Load() > 0 {
		select {
		case rn.room <- struct{}{}:
		default:
		}
	}
}
