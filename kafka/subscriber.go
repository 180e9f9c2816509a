package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrRevoked is the error of a settlement of a message whose partition was
// revoked (or lost) before it: the settlement is not recorded, and the
// partition's new owner delivers the record again. Ack and Nack return it.
var ErrRevoked = errors.New("kafka: partition revoked before the message was settled")

// EphemeralGroupPrefix starts the name of the consumer group of a
// subscription without eventkit.WithGroup.
const EphemeralGroupPrefix = "eventkit-ephemeral-"

// subscription is the driver.Subscription of one Subscribe: a consumer
// group member (a franz-go client of its own). poll decodes what the client
// fetched, in batches; ReceiveBatch hands them to package transport in
// partition order, redeliveries first; SendAcks and SendNacks settle them,
// and commitLoop commits the offsets below the first record not settled,
// partition by partition.
type subscription struct {
	d      *drv
	cl     *kgo.Client
	group  string
	ephem  bool
	buffer int // the size of poll's batches

	fetched   chan []*entry
	wake      chan struct{}
	assigned  chan struct{}
	assignOne sync.Once

	// ReceiveBatch's own: fetched entries not yet handed over.
	queue []*entry
	// observe is set for a subscription with eventkit.WithBuffer, which is
	// an observed subscription. pending then counts the messages handed to
	// package transport and not yet taken by the application (see
	// Delivered); ReceiveBatch waits while it is gate or more, so that a
	// revocation waits for about one batch ahead of the application.
	observe bool
	pending atomic.Int64
	gate    int64 // Config.MaxBatch: Delivered wakes ReceiveBatch below this

	mu     sync.Mutex
	cond   *sync.Cond
	parts  map[tp]*pstate
	redo   []*entry // nacked entries due for redelivery
	timers map[*time.Timer]struct{}

	ctx     context.Context // ends poll and commitLoop
	cancel  context.CancelFunc
	closing atomic.Bool
	wg      sync.WaitGroup
}

// OpenSubscription implements driver.Subscriber (see Transport.Subscribe).
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if len(cfg.Options) > 0 {
		return nil, eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("the kafka transport has no subscription options, got a %T", cfg.Options[0]))
	}
	if cfg.StartPosition != "" {
		if _, err := parsePositions(cfg.StartPosition); err != nil {
			return nil, err
		}
	}
	s := d.newSubscription(cfg)
	consume, existing, err := d.consumeTopics(ctx, pattern)
	if err != nil {
		return nil, err
	}
	if !cfg.FromStart && len(existing) > 0 {
		if err := d.initGroup(ctx, s.group, existing, cfg); err != nil {
			return nil, err
		}
	}
	cl, err := kgo.NewClient(s.clientOptions(consume)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer client: %w", err)
	}
	s.start(cl)
	var ds driver.Subscription = s
	if s.observe {
		ds = observed{s}
	}
	if len(existing) > 0 {
		select {
		case <-s.assigned:
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), d.cfg.closeTimeout)
			defer cancel()
			_ = s.Shutdown(sctx)
			return nil, fmt.Errorf("kafka: subscribe %q: waiting for the group assignment: %w", pattern, ctx.Err())
		}
	}
	return ds, nil
}

// observed is a subscription with eventkit.WithBuffer: it implements
// driver.DeliveryObserver, so that it knows which messages the application
// took and hands out about one batch ahead of them, no more. That bounds
// what a revocation waits for to what WithBuffer asks; it costs a
// hand-over per message between two goroutines of package transport
// (about 0.4 µs of CPU per message; see bench/kafka/RESULTS.md). Without
// WithBuffer, package transport hands messages over through a buffered
// channel, and a revocation waits for what it holds: up to two batches of
// driver.DefaultMaxBatch.
type observed struct{ *subscription }

// Delivered implements driver.DeliveryObserver: the application took a
// message, so that ReceiveBatch may hand out more.
func (o observed) Delivered(driver.AckID) {
	if o.pending.Add(-1) == o.gate-1 {
		o.signal()
	}
}

func (d *drv) newSubscription(cfg driver.Config) *subscription {
	s := &subscription{
		d:        d,
		group:    cfg.Group,
		buffer:   cfg.Buffer,
		fetched:  make(chan []*entry, 1),
		wake:     make(chan struct{}, 1),
		assigned: make(chan struct{}),
		parts:    make(map[tp]*pstate),
		timers:   make(map[*time.Timer]struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if s.buffer <= 0 {
		s.buffer = d.cfg.buffer
	}
	if s.group == "" {
		s.group = EphemeralGroupPrefix + uuid.NewString()
		s.ephem = true
	}
	s.gate = int64(cfg.MaxBatch)
	s.observe = cfg.Buffer > 0
	return s
}

// clientOptions are the options of the subscription's client: the group's,
// offsets committed by the subscription, the rebalance callbacks, then the
// transport's consumer options.
func (s *subscription) clientOptions(consume []kgo.Opt) []kgo.Opt {
	opts := append(s.d.groupOptions(s.group, consume),
		kgo.DisableAutoCommit(),
		kgo.Balancers(kgo.StickyBalancer()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	return append(opts, s.d.cfg.consumerOpts...)
}

// start runs the subscription on cl.
func (s *subscription) start(cl *kgo.Client) {
	s.cl = cl
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.d.track(s)
	s.wg.Add(2)
	go s.poll()
	go s.commitLoop()
}

// Shutdown implements driver.Shutdowner: it stops fetching, commits the
// offsets of finished records, leaves the group and deletes an ephemeral
// group, the commit and the deletion within ctx. Messages handed out and
// not settled are not committed: the group delivers them again. It returns
// the errors of the final commit and of the deletion.
func (s *subscription) Shutdown(ctx context.Context) error {
	defer s.d.forget(s)
	s.closing.Store(true)
	s.mu.Lock()
	s.cond.Broadcast() // a revocation in progress gives up waiting
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var errs []error
	if err := s.commit(ctx, nil); err != nil {
		errs = append(errs, fmt.Errorf("kafka: group %q: final commit: %w", s.group, err))
	}
	s.cl.Close() // leaves the group
	s.mu.Lock()
	for tm := range s.timers {
		tm.Stop()
	}
	s.timers = nil
	for _, p := range s.parts {
		p.dead = true
	}
	s.parts = map[tp]*pstate{}
	s.mu.Unlock()
	if s.ephem {
		if _, err := s.d.adm.DeleteGroup(ctx, s.group); err != nil && !isNoGroup(err) {
			errs = append(errs, fmt.Errorf("kafka: delete ephemeral group %q: %w", s.group, err))
		}
	}
	return errors.Join(errs...)
}

// Close is Shutdown bounded by WithCloseTimeout.
func (s *subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.d.cfg.closeTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// commitLoop commits finished offsets every commit interval.
func (s *subscription) commitLoop() {
	defer s.wg.Done()
	tk := time.NewTicker(s.d.cfg.commitInterval)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			_ = s.commit(s.ctx, nil)
		case <-s.ctx.Done():
			return
		}
	}
}

// commit commits the finished offsets of the partitions in only (all when
// nil) that moved since their last commit. It returns the commit's error
// (logged too, unless ctx ended).
func (s *subscription) commit(ctx context.Context, only map[tp]*pstate) error {
	offs, sent := s.toCommit(only)
	if len(offs) == 0 {
		return nil
	}
	var cerr error
	s.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = err
		if err == nil {
			cerr = commitRespErr(resp)
		}
	})
	if cerr != nil {
		if ctx.Err() == nil {
			s.d.cfg.logger.Warn("kafka: offset commit failed", "group", s.group, "err", cerr)
		}
		return cerr
	}
	s.mu.Lock()
	for p, o := range sent {
		if o > p.committed {
			p.committed = o
		}
	}
	s.mu.Unlock()
	return nil
}

// toCommit returns the offsets to commit of the partitions in only (all
// when nil), and the offset of each partition's state.
func (s *subscription) toCommit(only map[tp]*pstate) (map[string]map[int32]kgo.EpochOffset, map[*pstate]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offs := map[string]map[int32]kgo.EpochOffset{}
	sent := map[*pstate]int64{}
	for k, p := range s.parts {
		if only != nil && only[k] == nil {
			continue
		}
		if p.dead || p.commit.Offset <= p.committed {
			continue
		}
		if offs[k.topic] == nil {
			offs[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[k.topic][k.part] = p.commit
		sent[p] = p.commit.Offset
	}
	return offs, sent
}

func (s *subscription) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	for t, parts := range assigned {
		for _, part := range parts {
			k := tp{t, part}
			if p := s.parts[k]; p != nil && !p.dead {
				continue
			}
			s.parts[k] = &pstate{tp: k, next: -1, commit: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1}
		}
	}
	s.mu.Unlock()
	s.assignOne.Do(func() { close(s.assigned) })
}

// onRevoked stops handing out the revoked partitions, waits (up to the
// revoke timeout) until their messages handed to package transport are
// settled, commits them, and gives them up.
func (s *subscription) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := s.mark(revoked)
	if len(ps) == 0 {
		return
	}
	s.signal()
	if !s.closing.Load() {
		s.awaitSettled(ps)
		_ = s.commit(ctx, ps)
	}
	s.drop(ps)
}

// awaitSettled waits until the messages of ps in flight are settled, the
// revoke timeout passed or the subscription closes.
func (s *subscription) awaitSettled(ps map[tp]*pstate) {
	deadline := time.Now().Add(s.d.cfg.revokeTimeout)
	tm := time.AfterFunc(s.d.cfg.revokeTimeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer tm.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing.Load() && time.Now().Before(deadline) && inflight(ps) > 0 {
		s.cond.Wait()
	}
	if n := inflight(ps); n > 0 && !s.closing.Load() {
		s.d.cfg.logger.Warn("kafka: revoked partitions given up with messages unsettled", "group", s.group, "unsettled", n)
	}
}

// onLost gives up the partitions without committing (the group has moved on).
func (s *subscription) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := s.mark(lost)
	s.signal()
	s.drop(ps)
}

// mark marks the partitions of m being revoked, and returns their states.
func (s *subscription) mark(m map[string][]int32) map[tp]*pstate {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := map[tp]*pstate{}
	for t, parts := range m {
		for _, part := range parts {
			k := tp{t, part}
			if p := s.parts[k]; p != nil {
				p.revoking = true
				ps[k] = p
			}
		}
	}
	return ps
}

func (s *subscription) drop(ps map[tp]*pstate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range ps {
		p.dead = true
		if s.parts[k] == p {
			delete(s.parts, k)
		}
	}
}

func inflight(ps map[tp]*pstate) int {
	n := 0
	for _, p := range ps {
		n += p.inflight
	}
	return n
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
