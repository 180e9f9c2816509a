package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrRevoked is returned by Ack or Nack of a message whose partition was
// revoked (or lost) before the settlement: the settlement is not recorded,
// and the partition's new owner delivers the record again.
var ErrRevoked = errors.New("kafka: partition revoked before the message was settled")

// EphemeralGroupPrefix starts the name of the consumer group of a
// subscription without eventkit.WithGroup.
const EphemeralGroupPrefix = "eventkit-ephemeral-"

type tp struct {
	topic string
	part  int32
}

// pstate is the delivery and commit state of one assigned partition.
type pstate struct {
	tp
	entries   []*entry // delivered and not finished, or finished and waiting for those before them; offset order
	next      int64    // lowest offset not yet delivered in this assignment (-1: any)
	commit    kgo.EpochOffset
	committed int64 // last commit sent successfully (-1: none)
	inflight  int   // messages taken and not settled
	revoking  bool
	dead      bool
}

// entry is one record being handled; it is the Acknowledger of its
// messages. A poll allocates the entries of its records in one slab, each
// with the decoded context of its event.
type entry struct {
	s       *subscription
	owner   *pstate // the state of the record's partition when it was polled
	p       *pstate // owner, once delivered (nil before, and after a withdrawal)
	rec     *kgo.Record
	ev      event.Event
	topic   string
	attempt int
	bad     bool // not a CloudEvent: finished at once
	done    bool
	dec     decoded // what ev points to (binary mode)
}

type subscription struct {
	t      *Transport
	cl     *kgo.Client
	group  string
	ephem  bool
	buffer int

	out       chan *eventkit.Message
	fetched   chan []*entry
	wake      chan struct{}
	assigned  chan struct{}
	assignOne sync.Once

	mu     sync.Mutex
	cond   *sync.Cond
	parts  map[tp]*pstate
	redo   []*entry // nacked entries due for redelivery
	timers map[*time.Timer]struct{}

	ctx      context.Context // ends the workers
	cancel   context.CancelFunc
	closing  atomic.Bool
	wg       sync.WaitGroup
	stopOnce sync.Once
	watchEnd chan struct{}
	err      error
}

// Subscribe starts a subscription to pattern (a topic name, or a pattern
// with "*" and ">" consumed through a Kafka topic regex). With
// eventkit.WithGroup it joins that consumer group; otherwise it joins a new
// ephemeral group of its own, deleted when it closes. A group that has no
// committed offsets for a topic starts at the end offsets resolved during
// Subscribe (at the start with eventkit.FromStart); topics that appear
// later are read from their start. When matching topics exist, Subscribe
// returns once the member has its first assignment. Either way every event
// published after Subscribe returns is delivered.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, err
	}
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc := eventkit.NewSubscribeConfig(opts...)
	s := &subscription{
		t:        t,
		group:    sc.Group,
		buffer:   sc.Buffer,
		fetched:  make(chan []*entry, 1),
		wake:     make(chan struct{}, 1),
		assigned: make(chan struct{}),
		parts:    make(map[tp]*pstate),
		timers:   make(map[*time.Timer]struct{}),
		watchEnd: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if s.buffer <= 0 {
		s.buffer = t.cfg.buffer
	}
	s.out = make(chan *eventkit.Message, s.buffer)
	if s.group == "" {
		s.group = EphemeralGroupPrefix + uuid.NewString()
		s.ephem = true
	}

	// The Kafka topics to consume, and those that exist now.
	var (
		consume  []kgo.Opt
		existing []string
	)
	if topic.IsPattern(pattern) {
		re := t.cfg.mapper.Regexp(pattern)
		rx, err := regexp.Compile(re)
		if err != nil {
			return nil, fmt.Errorf("kafka: pattern %q: %w", pattern, err)
		}
		consume = []kgo.Opt{kgo.ConsumeTopics(re), kgo.ConsumeRegex()}
		td, err := t.adm.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("kafka: subscribe %q: list topics: %w", pattern, err)
		}
		for _, name := range td.Names() {
			if rx.MatchString(name) {
				existing = append(existing, name)
			}
		}
	} else {
		k, err := t.cfg.mapper.ToKafka(pattern)
		if err != nil {
			return nil, err
		}
		if err := t.ensureTopic(ctx, k); err != nil {
			return nil, err
		}
		consume = []kgo.Opt{kgo.ConsumeTopics(k)}
		td, err := t.adm.ListTopics(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("kafka: subscribe %q: describe topic: %w", pattern, err)
		}
		if d, ok := td[k]; ok && d.Err == nil {
			existing = append(existing, k)
		}
	}
	if !sc.FromStart && len(existing) > 0 {
		if err := t.initGroup(ctx, s.group, existing); err != nil {
			return nil, err
		}
	}

	copts := append([]kgo.Opt{kgo.SeedBrokers(t.cfg.brokers...)}, t.cfg.clientOpts...)
	copts = append(copts, consume...)
	copts = append(copts,
		kgo.ConsumerGroup(s.group),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMaxAge(t.cfg.metadataMaxAge),
		kgo.HeartbeatInterval(t.cfg.heartbeat),
		kgo.Balancers(kgo.StickyBalancer()),
		// Kafka's own fetch.max.wait.ms: a partition that joins the fetch
		// session late (after leader-epoch validation of its committed
		// offset) waits at most this for the fetch in flight.
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	copts = append(copts, t.cfg.consumerOpts...)
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer client: %w", err)
	}
	s.cl = cl
	s.ctx, s.cancel = context.WithCancel(context.Background())

	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		s.cancel()
		cl.Close()
		return nil, eventkit.ErrClosed
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()

	s.wg.Add(3)
	go s.poll()
	go s.dispatch()
	go s.commitLoop()
	go s.watch(ctx)

	if len(existing) > 0 {
		select {
		case <-s.assigned:
		case <-ctx.Done():
			_ = s.Close()
			return nil, fmt.Errorf("kafka: subscribe %q: waiting for the group assignment: %w", pattern, ctx.Err())
		}
	}
	return s, nil
}

// initGroup commits, for each partition of topics that group has no offset
// for, the current end offset, so that the group starts at the events
// published from now on.
func (t *Transport) initGroup(ctx context.Context, group string, topics []string) error {
	have, err := t.fetchGroupOffsets(ctx, group)
	if err != nil && !isNoGroup(err) {
		return fmt.Errorf("kafka: fetch offsets of group %q: %w", group, err)
	}
	ends, err := t.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: list end offsets: %w", err)
	}
	var set kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if _, ok := have.Lookup(o.Topic, o.Partition); ok {
			return
		}
		if set == nil {
			set = kadm.Offsets{}
		}
		set.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	if len(set) == 0 {
		return nil
	}
	resp, err := t.adm.CommitOffsets(ctx, group, set)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		// The group may have become active meanwhile (a member that
		// committed its own start); it then reads from its commits.
		t.cfg.logger.Debug("kafka: initial offsets of group not committed", "group", group, "err", err)
	}
	return nil
}

func isNoGroup(err error) bool { return errors.Is(err, kerr.GroupIDNotFound) }

// commitRespErr returns the first partition error of an offset commit.
func commitRespErr(resp *kmsg.OffsetCommitResponse) error {
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// watch ends the subscription when the subscribing context ends.
func (s *subscription) watch(ctx context.Context) {
	defer close(s.watchEnd)
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.t.cfg.closeTimeout)
		if err := s.stop(sctx); err != nil {
			s.t.cfg.logger.Warn("kafka: subscription ended by its context", "group", s.group, "err", err)
		}
		cancel()
	case <-s.ctx.Done():
	}
}

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close commits the offsets of finished records, leaves the group and ends
// the subscription, within the transport's WithCloseTimeout. Messages taken
// and not settled are not committed: the group delivers them again. It
// returns the errors of the final commit and of the deletion of an
// ephemeral group; a second call returns nil.
func (s *subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.t.cfg.closeTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown is Close bounded by ctx instead of WithCloseTimeout.
func (s *subscription) Shutdown(ctx context.Context) error {
	err := s.stop(ctx)
	<-s.watchEnd
	return err
}

// stop ends the subscription once; the final commit and the deletion of an
// ephemeral group run within ctx. Later calls return nil.
func (s *subscription) stop(ctx context.Context) error {
	var errs []error
	s.stopOnce.Do(func() {
		s.closing.Store(true)
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
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
		close(s.out)
		if s.ephem {
			if _, err := s.t.adm.DeleteGroup(ctx, s.group); err != nil && !isNoGroup(err) {
				errs = append(errs, fmt.Errorf("kafka: delete ephemeral group %q: %w", s.group, err))
			}
		}
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
	})
	return errors.Join(errs...)
}

// poll takes everything the client has fetched, decodes it and hands it
// to dispatch in batches of the subscription's buffer size.
//
// Taking the whole fetch at once lets the client fetch the next one while
// this one is delivered (so a subscription holds up to two fetches of
// records: kgo.FetchMaxBytes each), and lets each record be collected as
// soon as it is settled instead of when the last record of its fetch is
// taken.
func (s *subscription) poll() {
	defer s.wg.Done()
	type mapped struct {
		name string
		ok   bool
	}
	names := map[string]mapped{} // Kafka topic -> eventkit topic
	type part struct {
		recs  []*kgo.Record
		owner *pstate
		topic mapped
	}
	var parts []part
	for {
		fs := s.cl.PollFetches(s.ctx)
		if s.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		errs := 0
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				errs++
				s.t.cfg.logger.Warn("kafka: fetch error", "group", s.group, "topic", t, "partition", p, "err", err)
			}
		})
		n := fs.NumRecords()
		if errs > 0 && n == 0 {
			// An error that repeats (authorization, a deleted topic) must
			// not spin: franz-go retries internally; look again shortly.
			select {
			case <-time.After(250 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
		}
		if n == 0 {
			continue
		}
		// Each record belongs to the assignment of its partition as it is
		// right after the poll: franz-go hands out records of a partition
		// only after OnPartitionsAssigned made its state, and a record
		// polled before a revocation keeps the revoked state (and is
		// dropped), instead of binding to a later assignment of the same
		// partition.
		parts = parts[:0]
		s.mu.Lock()
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			m, seen := names[fp.Topic]
			if !seen {
				m.name, m.ok = s.t.cfg.mapper.FromKafka(fp.Topic)
				if len(names) > 4096 {
					clear(names)
				}
				names[fp.Topic] = m
			}
			parts = append(parts, part{recs: fp.Records, owner: s.parts[tp{fp.Topic, fp.Partition}], topic: m})
		})
		s.mu.Unlock()
		for len(parts) > 0 {
			size := 0
			for _, p := range parts {
				if size += len(p.recs); size >= s.buffer {
					size = s.buffer
					break
				}
			}
			slab := make([]entry, size) // one allocation per batch
			batch := make([]*entry, 0, size)
			for len(batch) < size {
				p := &parts[0]
				for len(p.recs) > 0 && len(batch) < size {
					e := &slab[len(batch)]
					e.s, e.owner, e.rec, e.topic, e.attempt, e.bad = s, p.owner, p.recs[0], p.topic.name, 1, !p.topic.ok
					p.recs[0] = nil // the entry holds it now
					p.recs = p.recs[1:]
					batch = append(batch, e)
				}
				if len(p.recs) == 0 {
					parts[0] = part{}
					parts = parts[1:]
				}
			}
			// The data of the first deliveries, copied out of the records
			// into one buffer per batch: a handler that changes its data in
			// place must not change the record, which a redelivery decodes
			// again.
			dataSize := 0
			for _, e := range batch {
				dataSize += len(e.rec.Value)
			}
			data := make([]byte, 0, dataSize)
			for _, e := range batch {
				if e.bad {
					continue
				}
				if ev, err := e.dec.decode(e.rec); err != nil {
					r := e.rec
					s.t.cfg.logger.Warn("kafka: skipping a record that is not a valid CloudEvent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
					e.bad = true
				} else {
					if len(ev.DataEncoded) > 0 {
						start := len(data)
						data = append(data, ev.DataEncoded...)
						ev.DataEncoded = data[start:len(data):len(data)]
					}
					e.ev = ev
				}
			}
			select {
			case s.fetched <- batch:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// dispatch delivers entries in order on the Messages channel,
// redeliveries first, dropping those of partitions no longer owned. An
// entry counts as in flight from the moment it is handed to the channel
// (its buffer included): a revocation waits for it to be settled.
//
// dispatch is the only sender on the channel: while the channel has free
// room it offers as many entries as fit under one lock and sends them
// without waiting; only on a full channel does it offer one entry at a time
// and wait for room, a wake-up (revocation, redelivery) or the end.
func (s *subscription) dispatch() {
	defer s.wg.Done()
	var queue []*entry
	ready := make([]*entry, 0, cap(s.out))
	for {
		s.mu.Lock()
		if len(s.redo) > 0 {
			queue = append(append(make([]*entry, 0, len(s.redo)+len(queue)), s.redo...), queue...)
			s.redo = s.redo[:0]
		}
		if len(queue) == 0 {
			s.mu.Unlock()
			select {
			case b := <-s.fetched:
				queue = b
			case <-s.wake:
			case <-s.ctx.Done():
				return
			}
			continue
		}
		if free := cap(s.out) - len(s.out); free > 0 {
			ready = ready[:0]
			for len(queue) > 0 && len(ready) < free {
				e := queue[0]
				queue[0] = nil
				queue = queue[1:]
				if s.offerLocked(e) {
					ready = append(ready, e)
				}
			}
			s.mu.Unlock()
			for i, e := range ready {
				s.out <- eventkit.NewMessage(e.topic, e.ev, e.attempt, e, e.rec) // room was free: no wait
				ready[i] = nil
			}
			continue
		}
		e := queue[0]
		ok := s.offerLocked(e)
		s.mu.Unlock()
		if !ok {
			queue[0] = nil
			queue = queue[1:]
			continue
		}
		m := eventkit.NewMessage(e.topic, e.ev, e.attempt, e, e.rec)
		select {
		case s.out <- m:
			queue[0] = nil
			queue = queue[1:]
		case <-s.wake:
			s.withdraw(e)
		case <-s.ctx.Done():
			s.withdraw(e)
			return
		}
	}
}

// offerLocked registers e as taken (before the send, so that a revocation
// waits for it); false drops it: its partition's assignment (the one it was
// polled in) is being revoked or is over. A bad record is finished here.
// s.mu is held.
func (s *subscription) offerLocked(e *entry) bool {
	if e.p == nil { // first delivery: bind to the assignment it was polled in
		p := e.owner
		if p == nil || p.revoking || p.dead || e.rec.Offset < p.next {
			return false
		}
		e.p = p
		p.next = e.rec.Offset + 1
		p.entries = append(p.entries, e)
		if e.bad {
			e.done = true
			p.advance()
			e.p = nil // a later drop must not unbind anything
			return false
		}
	} else if e.p.revoking || e.p.dead {
		return false
	}
	e.p.inflight++
	return true
}

// withdraw undoes offer for an entry that was not taken.
func (s *subscription) withdraw(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := e.p
	p.inflight--
	if e.attempt == 1 && len(p.entries) > 0 && p.entries[len(p.entries)-1] == e {
		// Not taken: unbind, so that it is offered again (or dropped) as
		// a first delivery.
		p.entries = p.entries[:len(p.entries)-1]
		p.next = e.rec.Offset
		e.p = nil
	}
	s.cond.Broadcast()
}

// advance pops the finished prefix of p's entries and moves the commit
// offset past it.
func (p *pstate) advance() {
	i := 0
	for ; i < len(p.entries) && p.entries[i].done; i++ {
		r := p.entries[i].rec
		p.commit = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	}
	if i > 0 {
		// Reslice (amortised O(1)); append reallocates, copying only the
		// live part, when the capacity runs out.
		clear(p.entries[:i])
		p.entries = p.entries[i:]
	}
}

// Ack implements eventkit.Acknowledger.
func (e *entry) Ack(*eventkit.Message) error {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p := e.p
	if p == nil || p.dead {
		return s.settledLate()
	}
	p.inflight--
	e.done = true
	p.advance()
	if p.revoking {
		s.cond.Broadcast()
	}
	return nil
}

// Nack implements eventkit.Acknowledger: the record is delivered again
// after delay, and the partition's commit stays before it until it is acked.
// The redelivery carries the event decoded again from the record, not the
// event of the nacked message, which its handler may have changed.
func (e *entry) Nack(_ *eventkit.Message, _ error, delay time.Duration) error {
	s := e.s
	fresh, ferr := redecode(e.rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := e.p
	if p == nil || p.dead {
		return s.settledLate()
	}
	p.inflight--
	e.attempt++
	if ferr == nil {
		e.ev = fresh
	} else { // it decoded before: not expected
		s.t.cfg.logger.Warn("kafka: decoding a nacked record again failed; redelivering the event as handled", "topic", e.rec.Topic, "partition", e.rec.Partition, "offset", e.rec.Offset, "err", ferr)
	}
	if p.revoking {
		s.cond.Broadcast()
		return nil // stays unfinished: the next owner delivers it
	}
	if delay <= 0 {
		s.redo = append(s.redo, e)
		s.signal()
		return nil
	}
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.timers == nil {
			return
		}
		delete(s.timers, tm)
		if !p.dead && !p.revoking {
			s.redo = append(s.redo, e)
			s.signal()
		}
	})
	s.timers[tm] = struct{}{}
	return nil
}

// redecode decodes r into an event that shares nothing with an earlier
// delivery: its own context and its own copy of the data.
func redecode(r *kgo.Record) (event.Event, error) {
	ev, err := new(decoded).decode(r)
	if err != nil {
		return ev, err
	}
	if ev.DataEncoded != nil {
		ev.DataEncoded = append([]byte(nil), ev.DataEncoded...)
	}
	return ev, nil
}

func (s *subscription) settledLate() error {
	if s.closing.Load() {
		return eventkit.ErrClosed
	}
	return ErrRevoked
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// commitLoop commits finished offsets every commit interval.
func (s *subscription) commitLoop() {
	defer s.wg.Done()
	tk := time.NewTicker(s.t.cfg.commitInterval)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			s.commit(s.ctx, nil)
		case <-s.ctx.Done():
			return
		}
	}
}

// commit commits the finished offsets of the partitions in only (all when
// nil) that moved since their last commit. It returns the commit's error
// (logged too, unless ctx ended).
func (s *subscription) commit(ctx context.Context, only map[tp]*pstate) error {
	s.mu.Lock()
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
	s.mu.Unlock()
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
			s.t.cfg.logger.Warn("kafka: offset commit failed", "group", s.group, "err", cerr)
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

// onRevoked stops delivering the revoked partitions, waits (up to the
// revoke timeout) for their taken messages to be settled, commits them, and
// gives them up.
func (s *subscription) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := s.mark(revoked)
	if len(ps) == 0 {
		return
	}
	s.signal()
	if !s.closing.Load() {
		deadline := time.Now().Add(s.t.cfg.revokeTimeout)
		tm := time.AfterFunc(s.t.cfg.revokeTimeout, func() {
			s.mu.Lock()
			s.cond.Broadcast()
			s.mu.Unlock()
		})
		s.mu.Lock()
		for !s.closing.Load() && time.Now().Before(deadline) && inflight(ps) > 0 {
			s.cond.Wait()
		}
		if n := inflight(ps); n > 0 && !s.closing.Load() {
			s.t.cfg.logger.Warn("kafka: revoked partitions given up with messages unsettled", "group", s.group, "unsettled", n)
		}
		s.mu.Unlock()
		tm.Stop()
		s.commit(ctx, ps)
	}
	s.drop(ps)
}

// onLost gives up the partitions without committing (the group has moved on).
func (s *subscription) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := s.mark(lost)
	s.signal()
	s.drop(ps)
}

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
