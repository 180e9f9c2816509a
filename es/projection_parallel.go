package es

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"
)

// laneBuffer is how many events wait for each worker of a parallel
// projection; with the workers it bounds the events in flight.
const laneBuffer = 16

// done is a worker's report on one event.
type done struct {
	pos uint64
	err error
}

// parallelRun is the state of a projection run under WithParallel: the
// dispatcher (the run's goroutine) gives each event to the worker of its
// key and moves the checkpoint past the longest prefix of handled events.
type parallelRun struct {
	p        *Projector
	lanes    []chan RecordedEvent
	results  chan done
	workers  sync.WaitGroup
	inflight []uint64           // dispatched positions, in log order
	finished map[uint64]bool    // positions handled, not yet under the watermark
	cancel   context.CancelFunc // cancels the workers' context
	skip     atomic.Bool        // set when the run stops on a failure or ctx: workers skip what is left
}

// errSkipped is a worker's report on an event it skipped because the run
// was stopping.
var errSkipped = errors.New("es: skipped: the projection is stopping")

// runParallel handles the events on WithParallel workers. head > 0: stop
// there (CatchUp).
func (p *Projector) runParallel(ctx context.Context, sub Subscription, ck *checkpointer, head uint64) error {
	n := p.cfg.parallel
	wctx, cancel := context.WithCancel(ctx)
	pr := &parallelRun{p: p, lanes: make([]chan RecordedEvent, n), results: make(chan done, n*laneBuffer),
		finished: make(map[uint64]bool), cancel: cancel}
	for i := range pr.lanes {
		pr.lanes[i] = make(chan RecordedEvent, laneBuffer)
		pr.workers.Add(1)
		go pr.work(wctx, pr.lanes[i])
	}
	defer pr.stop()
	headTick := time.NewTicker(p.cfg.headInterval)
	defer headTick.Stop()
	events := sub.Events()
	for {
		// Bounded: no new event while every slot is in flight.
		in := events
		if len(pr.inflight) >= cap(pr.results) {
			in = nil
		}
		select {
		case <-ctx.Done():
			return pr.finish(ctx, ck, nil)
		case <-headTick.C:
			p.measureHead(ctx)
		case d := <-pr.results:
			if d.err != nil {
				return pr.finish(ctx, ck, d.err)
			}
			if err := pr.complete(ctx, ck, d.pos, len(events) == 0); err != nil {
				return err
			}
		case r, ok := <-in:
			if !ok {
				if err := pr.finish(ctx, ck, nil); err != nil {
					return err
				}
				return ck.ended(ctx, sub)
			}
			pr.inflight = append(pr.inflight, r.Position)
			if !p.cfg.filter.Match(&r) {
				// skipped, but the checkpoint passes it
				if err := pr.complete(ctx, ck, r.Position, len(events) == 0); err != nil {
					return err
				}
				break
			}
			select {
			case pr.lanes[laneOf(p.cfg.key(r), len(pr.lanes))] <- r:
			case <-ctx.Done():
				return pr.finish(ctx, ck, nil)
			}
		}
		if head > 0 && p.position.Load() >= head {
			return pr.finish(ctx, ck, nil)
		}
	}
}

// work handles the events of one lane, in order.
func (pr *parallelRun) work(ctx context.Context, lane <-chan RecordedEvent) {
	defer pr.workers.Done()
	for r := range lane {
		if pr.skip.Load() {
			pr.results <- done{pos: r.Position, err: errSkipped}
			continue
		}
		pr.results <- done{pos: r.Position, err: pr.p.project(ctx, r)}
	}
}

// complete marks pos handled and moves the checkpoint past the handled
// prefix of the events in flight.
func (pr *parallelRun) complete(ctx context.Context, ck *checkpointer, pos uint64, idle bool) error {
	pr.finished[pos] = true
	moved := false
	var watermark uint64
	for len(pr.inflight) > 0 && pr.finished[pr.inflight[0]] {
		watermark = pr.inflight[0]
		delete(pr.finished, watermark)
		pr.inflight = pr.inflight[1:]
		moved = true
	}
	if !moved {
		return nil
	}
	return ck.advance(ctx, watermark, idle && len(pr.inflight) == 0)
}

// finish stops the run: after a failure (cause) or the end of ctx the
// workers skip the events left in their lanes, else they handle them. It
// records what they handled, saves the checkpoint, and returns cause or
// the first failure among the events that were in flight (nil if ctx
// ended).
func (pr *parallelRun) finish(ctx context.Context, ck *checkpointer, cause error) error {
	if cause != nil || ctx.Err() != nil {
		pr.skip.Store(true)
	}
	pr.stop()
	for {
		select {
		case d := <-pr.results:
			if d.err == errSkipped {
				continue
			}
			if d.err != nil {
				cause = cmpErr(cause, d.err)
				continue
			}
			// The watermark cannot pass a failed event: it is never
			// marked handled.
			if err := pr.complete(ctx, ck, d.pos, false); err != nil {
				return err
			}
		default:
			if cause != nil {
				return ck.stopped(ctx, cause)
			}
			return ck.save(ctx)
		}
	}
}

// stop closes the lanes, waits for the workers and cancels their context.
// It may be called more than once.
func (pr *parallelRun) stop() {
	if pr.lanes == nil {
		return
	}
	for _, l := range pr.lanes {
		close(l)
	}
	pr.lanes = nil
	pr.workers.Wait()
	pr.cancel()
}

// laneOf returns the lane of key among n: the same for a key in every run.
func laneOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}
