package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// runState is a started pipeline.
type runState struct {
	p       *Pipeline
	ctx     context.Context // the stages' context, cancelled when the drain is cut short
	cancel  context.CancelFunc
	sources []*runSource
	nodes   []*runNode

	stopPull chan struct{} // closed: the sources take no more messages
	stopOnce sync.Once
	kill     chan struct{} // closed: the drain is cut short
	killOnce sync.Once
	drained  chan struct{} // closed when every goroutine of the pipeline ended
	failed   chan error    // a subscription that ended by itself

	shutdownOnce sync.Once
	shutdownErr  error
	finished     chan struct{} // closed when the shutdown is over
	waitErr      error
	waited       chan struct{} // closed when Run's result is known
}

type runSource struct {
	Source
	node  *Node
	sub   eventkit.Subscription
	slots chan struct{}
	stats *nodeStats
}

type runNode struct {
	n       *Node
	idx     int           // in runState.nodes
	in      chan *batch   // at most size events per batch
	size    int           // the hand-over batch size
	bound   int           // the events in may hold
	queued  atomic.Int64  // events in in, or about to be (reserved by send)
	waiting atomic.Int64  // senders waiting for room
	room    chan struct{} // rung (buffer of one) when room is made and a sender waits
	handler eventkit.Handler
	direct  bool         // no middleware: the stage runs without an eventkit.Message
	senders atomic.Int64 // upstream nodes still running
	stats   *nodeStats
}

type nodeStats struct {
	blocked  atomic.Int64 // ns, of the waits that ended
	waiters  atomic.Int64 // senders waiting now
	since    atomic.Int64 // sum of their start times (unix ns)
	in, out  atomic.Uint64
	failed   atomic.Uint64
	acked    atomic.Uint64 // sources
	nacked   atomic.Uint64 // sources
	inFlight atomic.Int64  // sources
	run      *runNode      // set by Start, before the pipeline's run is published
}

// Start builds the pipeline (Build), subscribes every source and starts
// moving events in the background. It returns once every source is
// subscribed, or with the first error. The pipeline then runs until ctx
// ends (it then drains, bounded by WithShutdownTimeout), Shutdown is called
// or a subscription fails; Wait waits for that end. Start may be called
// once.
func (p *Pipeline) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("pipeline: already started")
	}
	p.started = true
	p.mu.Unlock()
	if err := p.Build(); err != nil {
		return err
	}
	rs := &runState{
		p:        p,
		stopPull: make(chan struct{}),
		kill:     make(chan struct{}),
		drained:  make(chan struct{}),
		failed:   make(chan error, 1),
		finished: make(chan struct{}),
		waited:   make(chan struct{}),
	}
	rs.ctx, rs.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, n := range p.nodes {
		if n.stage != nil {
			rs.addNode(n)
		}
	}
	for _, s := range p.sources {
		sub, err := s.Subscriber.Subscribe(rs.ctx, s.Pattern, s.Options...)
		if err != nil {
			for _, o := range rs.sources {
				_ = o.sub.Close()
			}
			rs.cancel()
			return fmt.Errorf("pipeline: subscribe source %q to %q: %w", s.Name, s.Pattern, err)
		}
		rs.sources = append(rs.sources, &runSource{Source: s.Source, node: s.node, sub: sub,
			slots: make(chan struct{}, p.maxInFlight), stats: s.node.stats})
	}
	p.mu.Lock()
	p.run = rs
	p.mu.Unlock()
	rs.launch()
	go rs.watch(ctx)
	return nil
}

func (rs *runState) addNode(n *Node) {
	s := n.stage
	q := s.queue
	if q == 0 {
		q = rs.p.queue
	}
	// Every batch has at least one event: a channel of q batches never
	// blocks a sender that reserved room for its events.
	rn := &runNode{n: n, idx: len(rs.nodes), in: make(chan *batch, q), size: handOverSize(q), bound: q,
		room: make(chan struct{}, 1), stats: n.stats}
	rn.stats.run = rn
	rn.senders.Store(int64(len(n.up)))
	rn.handler = eventkit.Chain(s.mw...)(recoverPanics(eventkit.HandlerFunc(rn.core)))
	rn.direct = len(s.mw) == 0
	rs.nodes = append(rs.nodes, rn)
}

// launch starts every goroutine; drained is closed when they all ended.
func (rs *runState) launch() {
	var all sync.WaitGroup
	for _, rn := range rs.nodes {
		all.Add(1)
		go func() { defer all.Done(); rs.runNode(rn) }()
	}
	for _, src := range rs.sources {
		all.Add(1)
		go func() { defer all.Done(); rs.read(src) }()
	}
	go func() { all.Wait(); close(rs.drained) }()
}

// watch ends the pipeline when ctx ends or a subscription fails.
func (rs *runState) watch(ctx context.Context) {
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-rs.failed:
	case <-rs.stopPull: // Shutdown was called
		<-rs.finished
		rs.waitErr = rs.shutdownErr
		close(rs.waited)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), rs.p.shutdownTimeout)
	defer cancel()
	rs.waitErr = errors.Join(runErr, rs.shutdown(sctx))
	close(rs.waited)
}

// Wait waits until the pipeline started by Start has ended and returns
// what Run returns.
func (p *Pipeline) Wait() error {
	p.mu.Lock()
	rs := p.run
	p.mu.Unlock()
	if rs == nil {
		return errors.New("pipeline: Wait before a successful Start")
	}
	<-rs.waited
	return rs.waitErr
}

// Run is Start followed by Wait: it moves events until ctx ends, then
// drains (bounded by WithShutdownTimeout) and returns. It returns an error
// if the pipeline does not build, a subscription failed, or the drain did
// not finish in time.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	return p.Wait()
}

// Shutdown drains the pipeline: the sources take no more messages, every
// event already taken goes through the remaining stages (open batches are
// flushed) and its source message is settled, then the subscriptions are
// closed. If ctx ends first the stages' context is cancelled, events not
// yet settled are left unsettled (a durable transport redelivers them) and
// ctx's error is returned. It is safe to call more than once.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	rs := p.run
	p.started = true
	p.mu.Unlock()
	if rs == nil {
		return nil
	}
	return rs.shutdown(ctx)
}

func (rs *runState) shutdown(ctx context.Context) error {
	rs.stopOnce.Do(func() { close(rs.stopPull) })
	ran := false
	rs.shutdownOnce.Do(func() {
		ran = true
		select {
		case <-rs.drained:
		case <-ctx.Done():
			rs.killOnce.Do(func() { close(rs.kill) })
			rs.cancel()
			<-rs.drained
			rs.shutdownErr = fmt.Errorf("pipeline: drain cut short: %w", ctx.Err())
		}
		for _, s := range rs.sources {
			if err := s.sub.Close(); err != nil && !errors.Is(err, eventkit.ErrClosed) {
				rs.p.logger.Warn("pipeline: close subscription", "source", s.Name, "err", err)
			}
		}
		rs.cancel()
		close(rs.finished)
	})
	if ran {
		return rs.shutdownErr
	}
	select {
	case <-rs.finished:
		return rs.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (rs *runState) killed() bool {
	select {
	case <-rs.kill:
		return true
	default:
		return false
	}
}

// read takes the messages of one source while it may: one, waiting for
// it, then those already there (each with an in-flight slot) up to the
// hand-over size, and hands them on as one batch.
func (rs *runState) read(src *runSource) {
	defer rs.finishedSending(src.node)
	em := rs.newEmitter(nil)
	defer em.flush()
	limit := 1
	for _, n := range src.node.next {
		limit = max(limit, n.stats.run.size)
	}
	msgs := src.sub.Messages()
	for {
		if !rs.acquire(src) {
			return
		}
		select {
		case <-rs.stopPull:
			<-src.slots
			return
		case m, ok := <-msgs:
			if !ok {
				<-src.slots
				rs.subscriptionEnded(src)
				return
			}
			rs.take(src, m, em)
		}
		if !rs.takeQueued(src, msgs, limit-1, em) {
			return
		}
		em.flush()
	}
}

// takeQueued takes up to n messages already waiting in msgs, while
// in-flight slots are free; false when the subscription ended.
func (rs *runState) takeQueued(src *runSource, msgs <-chan *eventkit.Message, n int, em *emitter) bool {
	for range n {
		select {
		case src.slots <- struct{}{}:
		default:
			return true
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				<-src.slots
				rs.subscriptionEnded(src)
				return false
			}
			rs.take(src, m, em)
		default:
			<-src.slots
			return true
		}
	}
	return true
}

// take starts tracking m and hands its event to the source's successors.
func (rs *runState) take(src *runSource, m *eventkit.Message, em *emitter) {
	src.stats.in.Add(1)
	src.stats.inFlight.Add(1)
	t := &tracker{rs: rs, src: src, msg: m}
	t.refs.Store(1)
	t.self[0] = t
	var buf [1]eventItem
	outs := buf[:0]
	for i, n := range src.node.next {
		e := m.Event
		if i > 0 {
			e = CloneEvent(m.Event)
		}
		outs = append(outs, eventItem{ev: e, node: n})
	}
	em.emit(t.self[:], m.Topic, m.Attempt, outs)
}

// acquire takes an in-flight slot of src, waiting while the pipeline is
// full; false when the sources stop.
func (rs *runState) acquire(src *runSource) bool {
	select {
	case src.slots <- struct{}{}:
		return true
	default:
	}
	defer src.stats.wait()()
	select {
	case src.slots <- struct{}{}:
		return true
	case <-rs.stopPull:
		return false
	}
}

func (rs *runState) subscriptionEnded(src *runSource) {
	select {
	case <-rs.stopPull:
		return
	default:
	}
	err := src.sub.Err()
	if err == nil {
		err = errors.New("subscription ended")
	}
	select {
	case rs.failed <- fmt.Errorf("pipeline: source %q: %w", src.Name, err):
	default:
	}
}

// emit hands outs to their nodes; the items share srcs, whose references
// move to them.
func (em *emitter) emit(srcs []*tracker, topic string, attempt int, outs []eventItem) {
	em.uncounted += uint64(len(outs))
	transfer(srcs, len(outs))
	for _, o := range outs {
		em.add(o.node.stats.run, item{ev: o.ev, topic: topic, attempt: attempt, srcs: srcs})
	}
}

// wait counts a sender blocked from now until the returned function is
// called.
func (s *nodeStats) wait() func() {
	start := time.Now().UnixNano()
	s.waiters.Add(1)
	s.since.Add(start)
	return func() {
		s.blocked.Add(time.Now().UnixNano() - start)
		s.since.Add(-start)
		s.waiters.Add(-1)
	}
}

// blockedNow returns the blocked time, the waits going on included, and
// how many senders wait now.
func (s *nodeStats) blockedNow() (time.Duration, int) {
	n := s.waiters.Load()
	ongoing := n*time.Now().UnixNano() - s.since.Load()
	return time.Duration(s.blocked.Load() + max(ongoing, 0)), int(n)
}

// finishedSending tells n's successors that n sends no more.
func (rs *runState) finishedSending(n *Node) {
	for _, s := range n.successors() {
		rn := s.stats.run
		if rn.senders.Add(-1) == 0 {
			close(rn.in)
		}
	}
}

// runNode runs the workers of one stage until its queue is closed and
// empty.
func (rs *runState) runNode(rn *runNode) {
	defer rs.finishedSending(rn.n)
	s := rn.n.stage
	var wg sync.WaitGroup
	switch {
	case s.batch != nil:
		batches := make(chan []item, s.workers)
		wg.Go(func() { rs.collect(rn, batches) })
		for range s.workers {
			wg.Go(func() {
				em := rs.newEmitter(&rn.stats.out)
				for b := range batches {
					rn.stats.in.Add(uint64(len(b)))
					rs.handle(rn, &unit{items: b}, em)
					em.flush()
				}
			})
		}
	case s.ordered && s.workers > 1:
		lanes := make([]chan *batch, s.workers)
		for i := range lanes {
			lanes[i] = make(chan *batch, max(1, rn.bound/rn.size/s.workers))
			wg.Go(func() { rs.work(rn, lanes[i], false) })
		}
		wg.Go(func() { rs.dispatch(rn, lanes) })
	default:
		for range s.workers {
			wg.Go(func() { rs.work(rn, rn.in, true) })
		}
	}
	wg.Wait()
}

// work is one worker of rn: it handles the batches of in one by one, each
// event in turn, and hands the outputs of a batch on when it is done. in
// is rn's queue (counted by queued) or one of its ordered lanes.
func (rs *runState) work(rn *runNode, in <-chan *batch, queue bool) {
	em := rs.newEmitter(&rn.stats.out)
	var u unit
	for b := range in {
		if queue {
			rn.received(b)
		}
		rn.stats.in.Add(uint64(len(b.items)))
		for i := range b.items {
			rs.handleOne(rn, b.items[i:i+1], &u, em)
		}
		em.flush()
		putBatch(b)
	}
}

// dispatch splits the batches of rn's queue among its lanes by key: the
// events of one key go to one lane, in order.
func (rs *runState) dispatch(rn *runNode, lanes []chan *batch) {
	defer func() {
		for _, l := range lanes {
			close(l)
		}
	}()
	parts := make([]*batch, len(lanes))
	for b := range rn.in {
		rn.received(b)
		for _, it := range b.items {
			i := keyHash(eventkit.EventKey(it.ev)) % uint32(len(lanes))
			if parts[i] == nil {
				parts[i] = getBatch()
			}
			parts[i].items = append(parts[i].items, it)
		}
		putBatch(b)
		for i, p := range parts {
			if p != nil {
				lanes[i] <- p
				parts[i] = nil
			}
		}
	}
}

// collect gathers rn's queue into batches of the stage's size or wait.
func (rs *runState) collect(rn *runNode, batches chan<- []item) {
	defer close(batches)
	s := rn.n.stage
	var cur []item
	var timer *time.Timer
	var fire <-chan time.Time
	flush := func() {
		if timer != nil {
			timer.Stop()
			fire = nil
		}
		if len(cur) > 0 {
			batches <- cur
			cur = nil
		}
	}
	for {
		select {
		case b, ok := <-rn.in:
			if !ok {
				flush()
				return
			}
			rn.received(b)
			for _, it := range b.items {
				cur = append(cur, it)
				if len(cur) == 1 {
					timer = time.NewTimer(s.batchWait)
					fire = timer.C
				}
				if len(cur) >= s.batchSize {
					flush()
				}
			}
			putBatch(b)
		case <-fire:
			fire = nil
			flush()
		}
	}
}

// handleOne handles a single item (it has one).
// A stage without middleware works on the worker's unit and on the item
// where it is, in its batch: nothing else can hold them once handle
// returned. With middleware the unit and the item are the message's own
// (the middleware may keep the message).
func (rs *runState) handleOne(rn *runNode, it []item, scratch *unit, em *emitter) {
	if !rn.direct {
		u := &unit{}
		u.one[0] = it[0]
		u.items = u.one[:]
		rs.handle(rn, u, em)
		return
	}
	u := scratch
	u.items = it
	u.acked, u.nacked, u.nackErr = false, false, nil
	rs.handle(rn, u, em)
}

// handle runs the stage's handler (with its middleware) on u, applies the
// outcome to u's source messages and gives the outputs to em.
func (rs *runState) handle(rn *runNode, u *unit, em *emitter) {
	if rs.killed() {
		return // abandoned: its source messages stay unsettled
	}
	name := rn.n.name
	first := &u.items[0]
	attempt := first.attempt
	for _, it := range u.items[1:] {
		attempt = max(attempt, it.attempt)
	}
	var err error
	if rn.direct {
		err = rn.runDirect(rs.ctx, u)
	} else {
		m := eventkit.NewMessage(first.topic, first.ev, attempt, unitAcker{}, u)
		err = rn.handler.Handle(rs.ctx, m)
	}
	switch {
	case u.nacked:
		rn.stats.failed.Add(uint64(len(u.items)))
		u.fail(name, u.nackErr, u.nackDelay)
	case u.acked:
		transfer(u.srcs(), 0)
	case err != nil:
		rn.stats.failed.Add(uint64(len(u.items)))
		u.fail(name, err, retryDelay(err))
	default:
		em.emit(u.srcs(), first.topic, attempt, u.outs)
	}
}

// runDirect runs the stage on u without middleware, a panic becoming a
// *eventkit.PanicError.
func (rn *runNode) runDirect(ctx context.Context, u *unit) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &eventkit.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return rn.run(ctx, u, u.items[0].ev)
}

// core is the innermost handler of a stage with middleware.
func (rn *runNode) core(ctx context.Context, m *eventkit.Message) error {
	return rn.run(ctx, m.Raw().(*unit), m.Event)
}

// run is the stage's work on u: the contract checks, the stage's function
// (on ev, the event the middleware passed on, for a single item) and the
// choice of the next nodes.
func (rn *runNode) run(ctx context.Context, u *unit, ev event.Event) error {
	s, n := rn.n.stage, rn.n
	u.outs = u.out1[:0]
	if s.consumes != nil {
		for _, it := range u.items {
			if !s.accepts(it.ev.Type()) {
				return eventkit.Permanent(&ContractError{Stage: s.name, Type: it.ev.Type(), What: "consumes"})
			}
		}
	}
	var evs []event.Event
	var err error
	if s.batch != nil {
		in := make([]*eventkit.Message, len(u.items))
		for i, it := range u.items {
			in[i] = eventkit.NewMessage(it.topic, it.ev, it.attempt, nil, nil)
		}
		evs, err = s.batch(ctx, in)
	} else {
		evs, err = s.proc(ctx, ev, u.items[0].topic, u.evs[:0])
	}
	if err != nil {
		return err
	}
	if s.declared && s.kind != kindFilter && s.kind != kindRoute {
		for _, e := range evs {
			if !s.emits(e.Type()) {
				return eventkit.Permanent(&ContractError{Stage: s.name, Type: e.Type(), What: "produces"})
			}
		}
	}
	for _, e := range evs {
		if s.kind == kindRoute {
			to := n.cases[s.route(e)]
			if to == nil {
				to = n.dflt
			}
			if to != nil {
				u.outs = append(u.outs, eventItem{ev: e, node: to})
			}
			continue
		}
		for i, to := range n.next {
			if i > 0 {
				e = CloneEvent(e)
			}
			u.outs = append(u.outs, eventItem{ev: e, node: to})
		}
	}
	return nil
}

// nack nacks a source message after a failure.
func (rs *runState) nack(t *tracker, stage string, err error, delay time.Duration) {
	m, log := t.msg, rs.p.logger
	if delay <= 0 {
		delay = rs.p.redeliveryDelay(m.Attempt)
	}
	log.Warn("pipeline: stage failed; the source message is nacked", "stage", stage, "source", t.src.Name,
		"topic", m.Topic, "id", m.Event.ID(), "attempt", m.Attempt, "err", err)
	nerr := m.NackAfter(err, delay)
	if errors.Is(nerr, eventkit.ErrUnsupported) {
		nerr = m.Nack(err)
	}
	if errors.Is(nerr, eventkit.ErrUnsupported) {
		log.Error("pipeline: the source cannot redeliver; the failed event is acked (add middleware.DeadLetter to the stage to keep it)",
			"stage", stage, "source", t.src.Name, "id", m.Event.ID(), "err", err)
		nerr = m.Ack()
	}
	if nerr != nil {
		log.Warn("pipeline: nack failed", "source", t.src.Name, "id", m.Event.ID(), "err", nerr)
	}
}

func (p *Pipeline) redeliveryDelay(attempt int) time.Duration {
	d := p.redeliveryInitial
	for i := 1; i < attempt && d < p.redeliveryMax; i++ {
		d *= 2
	}
	return min(d, max(p.redeliveryMax, p.redeliveryInitial))
}

func recoverPanics(h eventkit.Handler) eventkit.Handler {
	return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = &eventkit.PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		return h.Handle(ctx, m)
	})
}

func keyHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
