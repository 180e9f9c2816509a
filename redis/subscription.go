package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	goredis "github.com/redis/go-redis/v9"
)

// subscription reads one group (named or private) on every stream its
// pattern covers. One goroutine (loop) reads, reclaims and redelivers nacked
// entries, and decodes them; another (handOver) hands the messages over, so
// that the next read overlaps with the delivery of the last; a third
// (ackLoop) batches XACKs.
type subscription struct {
	t        *Transport
	pattern  string
	wildcard bool
	group    string
	private  bool
	consumer string
	startID  string // where a new group starts on the streams known at Subscribe
	batch    int64

	out       chan *eventkit.Message
	batches   chan []outMsg // loop -> handOver
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when loop has returned
	delivered chan struct{} // closed when handOver has returned

	heldMu sync.Mutex
	held   map[string]map[string]struct{} // stream -> ids read, not handed over yet

	// Owned by loop (and by start, before loop runs).
	streams      []string
	known        map[string]*streamAcker
	lastClaim    time.Time
	lastDiscover time.Time
	lastTouch    time.Time

	mu     sync.Mutex // guards nacks, closed
	nacks  []nackReq
	closed bool
	err    error

	ackMu     sync.RWMutex // senders on acks hold it shared; Close takes it exclusively
	ackClosed bool
	acks      chan ackReq
	ackDone   chan struct{}

	stopCtx   func() bool
	closeOnce sync.Once
}

type ackReq struct{ stream, id string }

type nackReq struct {
	stream, id string
	due        time.Time
}

// streamAcker settles the messages of one stream of a subscription.
type streamAcker struct {
	s      *subscription
	stream string
	topic  string
}

func (a *streamAcker) Ack(m *eventkit.Message) error {
	return a.s.ack(a.stream, m.Raw().(goredis.XMessage).ID)
}

func (a *streamAcker) Nack(m *eventkit.Message, _ error, delay time.Duration) error {
	return a.s.nack(a.stream, m.Raw().(goredis.XMessage).ID, delay)
}

func newSubscription(t *Transport, pattern string, cfg eventkit.SubscribeConfig) *subscription {
	s := &subscription{
		t:         t,
		pattern:   pattern,
		wildcard:  topic.IsPattern(pattern),
		group:     cfg.Group,
		consumer:  consumerName(),
		startID:   "$",
		batch:     int64(cfg.Buffer),
		out:       make(chan *eventkit.Message),
		batches:   make(chan []outMsg),
		done:      make(chan struct{}),
		delivered: make(chan struct{}),
		held:      make(map[string]map[string]struct{}),
		known:     make(map[string]*streamAcker),
		acks:      make(chan ackReq, 1024),
		ackDone:   make(chan struct{}),
	}
	if s.batch <= 0 {
		s.batch = DefaultBuffer
	}
	if s.group == "" {
		s.private = true
		s.group = "eventkit-private-" + randomHex(8)
	}
	if cfg.FromStart {
		s.startID = "0"
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// start creates the group on the streams the pattern covers now.
func (s *subscription) start(ctx context.Context) error {
	if !s.wildcard {
		return s.addStream(ctx, s.pattern, s.startID)
	}
	s.lastDiscover = time.Now()
	return s.discover(ctx, s.startID)
}

// discover adds the registered topics that match the pattern and are not
// read yet, creating the group on each at startID.
func (s *subscription) discover(ctx context.Context, startID string) error {
	names, err := s.t.client.SMembers(ctx, s.t.RegistryKey()).Result()
	if err != nil {
		return fmt.Errorf("redis: subscribe %q: read topic registry: %w", s.pattern, err)
	}
	for _, name := range names {
		if !topic.Match(s.pattern, name) {
			continue
		}
		if _, ok := s.known[s.t.StreamKey(name)]; ok {
			continue
		}
		if err := s.addStream(ctx, name, startID); err != nil {
			return err
		}
	}
	return nil
}

func (s *subscription) addStream(ctx context.Context, name, startID string) error {
	key := s.t.StreamKey(name)
	if err := s.t.client.XGroupCreateMkStream(ctx, key, s.group, startID).Err(); err != nil && !isBusyGroup(err) {
		return fmt.Errorf("redis: subscribe %q: create group %q on %q: %w", s.pattern, s.group, key, err)
	}
	s.streams = append(s.streams, key)
	s.known[key] = &streamAcker{s: s, stream: key, topic: name}
	return nil
}

func (s *subscription) run(ctx context.Context) {
	go s.loop()
	go s.handOver()
	go s.ackLoop()
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
}

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription: the reader stops (within the block time),
// pending acks are flushed, and a private group is destroyed. Messages taken
// and not settled stay pending in a named group, for a member to reclaim.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		if s.stopCtx != nil {
			s.stopCtx()
		}
		s.cancel()
		<-s.done
		<-s.delivered
		s.mu.Lock()
		s.closed = true
		s.nacks = nil
		s.mu.Unlock()
		s.ackMu.Lock()
		s.ackClosed = true
		close(s.acks)
		s.ackMu.Unlock()
		<-s.ackDone
		if s.private {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, key := range s.streams {
				if err := s.t.client.XGroupDestroy(ctx, key, s.group).Err(); err != nil {
					s.t.o.logger.Warn("redis: destroy private group", "stream", key, "group", s.group, "err", err)
				}
			}
			cancel()
		}
		s.t.forget(s)
	})
	return nil
}

func (s *subscription) ack(stream, id string) error {
	s.ackMu.RLock()
	if !s.ackClosed {
		s.acks <- ackReq{stream, id}
		s.ackMu.RUnlock()
		return nil
	}
	s.ackMu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.t.client.XAck(ctx, stream, s.group, id).Err(); err != nil {
		return fmt.Errorf("redis: ack %s on %s after close: %w", id, stream, err)
	}
	return nil
}

func (s *subscription) nack(stream, id string, delay time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// The entry stays pending; a member of the group reclaims it after
		// the claim idle time.
		return eventkit.ErrClosed
	}
	s.nacks = append(s.nacks, nackReq{stream: stream, id: id, due: time.Now().Add(delay)})
	return nil
}

// ackLoop batches acks into pipelined XACKs.
func (s *subscription) ackLoop() {
	defer close(s.ackDone)
	for r := range s.acks {
		batch := map[string][]string{r.stream: {r.id}}
		n := 1
	drain:
		for n < 1000 {
			select {
			case r2, ok := <-s.acks:
				if !ok {
					break drain
				}
				batch[r2.stream] = append(batch[r2.stream], r2.id)
				n++
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.t.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for stream, ids := range batch {
				p.XAck(ctx, stream, s.group, ids...)
			}
			return nil
		})
		cancel()
		if err != nil {
			s.t.o.logger.Warn("redis: XACK failed; the entries will be delivered again", "group", s.group, "count", n, "err", err)
		}
	}
}

// entry is a stream entry about to be delivered.
type entry struct {
	acker   *streamAcker
	msg     goredis.XMessage
	attempt int
}

func (s *subscription) loop() {
	defer close(s.done)
	defer close(s.batches)
	backoff := 50 * time.Millisecond
	for s.ctx.Err() == nil {
		err := s.step()
		if err == nil || s.ctx.Err() != nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if errors.Is(err, goredis.ErrClosed) {
			s.mu.Lock()
			s.err = fmt.Errorf("redis: subscription %q: %w", s.pattern, err)
			s.mu.Unlock()
			return
		}
		s.t.o.logger.Warn("redis: subscription read failed; retrying", "pattern", s.pattern, "group", s.group, "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *subscription) touchEvery() time.Duration { return max(s.t.o.claimIdle/4, 10*time.Millisecond) }

// step does one round: discover new topics, keep held entries alive,
// redeliver due nacks, reclaim idle entries, read new entries.
func (s *subscription) step() error {
	ctx := s.ctx
	now := time.Now()
	if s.wildcard && now.Sub(s.lastDiscover) >= s.t.o.discover {
		// Topics registered after Subscribe have only entries published
		// after it: their group starts at the beginning.
		if err := s.discover(ctx, "0"); err != nil {
			return err
		}
		s.lastDiscover = now
	}
	if now.Sub(s.lastTouch) >= s.touchEvery() {
		if err := s.touch(); err != nil {
			return err
		}
	}
	if err := s.redeliverNacks(); err != nil {
		return err
	}
	if now.Sub(s.lastClaim) >= s.touchEvery() {
		if err := s.reclaim(); err != nil {
			return err
		}
		s.lastClaim = now
	}
	block := min(s.t.o.block, s.touchEvery())
	if due, ok := s.nextNack(); ok {
		block = min(block, max(time.Until(due), time.Millisecond))
	}
	if s.wildcard {
		block = min(block, max(time.Until(s.lastDiscover.Add(s.t.o.discover)), time.Millisecond))
	}
	if len(s.streams) == 0 {
		select {
		case <-time.After(block):
		case <-ctx.Done():
		}
		return nil
	}
	ids := make([]string, 0, 2*len(s.streams))
	ids = append(ids, s.streams...)
	for range s.streams {
		ids = append(ids, ">")
	}
	res, err := s.t.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: s.group, Consumer: s.consumer, Streams: ids, Count: s.batch, Block: block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if isNoGroup(err) {
		// A stream was deleted (and maybe recreated): create the group
		// again from its start.
		for _, key := range s.streams {
			if err := s.t.client.XGroupCreateMkStream(ctx, key, s.group, "0").Err(); err != nil && !isBusyGroup(err) {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	var batch []entry
	for _, st := range res {
		a := s.known[st.Stream]
		for _, m := range st.Messages {
			batch = append(batch, entry{acker: a, msg: m, attempt: 1})
		}
	}
	return s.deliver(batch)
}

// deliver decodes the entries and passes them to handOver, keeping them
// (and nacked entries waiting for their delay) claimed while it waits.
func (s *subscription) deliver(batch []entry) error {
	msgs := make([]outMsg, 0, len(batch))
	s.heldMu.Lock()
	for _, en := range batch {
		if en.msg.Values == nil {
			continue // deleted (trimmed) entry
		}
		ev, err := decode(en.msg.Values)
		if err != nil {
			s.t.o.logger.Error("redis: dropping an entry that is not a valid CloudEvent", "stream", en.acker.stream, "id", en.msg.ID, "err", err)
			_ = s.ack(en.acker.stream, en.msg.ID)
			continue
		}
		msgs = append(msgs, outMsg{eventkit.NewMessage(en.acker.topic, ev, en.attempt, en.acker, en.msg), en.acker.stream, en.msg.ID})
		h := s.held[en.acker.stream]
		if h == nil {
			h = make(map[string]struct{})
			s.held[en.acker.stream] = h
		}
		h[en.msg.ID] = struct{}{}
	}
	s.heldMu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	ticker := time.NewTicker(s.touchEvery())
	defer ticker.Stop()
	for {
		select {
		case s.batches <- msgs:
			return nil
		case <-ticker.C:
			if err := s.touch(); err != nil && s.ctx.Err() == nil {
				s.t.o.logger.Warn("redis: keeping entries claimed failed", "err", err)
			}
		case <-s.ctx.Done():
			return nil
		}
	}
}

type outMsg struct {
	m          *eventkit.Message
	stream, id string
}

// handOver delivers the decoded batches one message at a time.
func (s *subscription) handOver() {
	defer close(s.delivered)
	defer close(s.out)
	for msgs := range s.batches {
		for _, m := range msgs {
			select {
			case s.out <- m.m:
			case <-s.ctx.Done():
				return
			}
			s.heldMu.Lock()
			delete(s.held[m.stream], m.id)
			s.heldMu.Unlock()
		}
	}
}

// touch resets the idle time of the entries this subscription holds but has
// not handed over (read, and nacked ones waiting for their delay), with
// XCLAIM JUSTID, which does not count a delivery.
func (s *subscription) touch() error {
	s.lastTouch = time.Now()
	ids := map[string][]string{}
	s.heldMu.Lock()
	for stream, h := range s.held {
		for id := range h {
			ids[stream] = append(ids[stream], id)
		}
	}
	s.heldMu.Unlock()
	s.mu.Lock()
	for _, n := range s.nacks {
		ids[n.stream] = append(ids[n.stream], n.id)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	_, err := s.t.client.Pipelined(s.ctx, func(p goredis.Pipeliner) error {
		for stream, list := range ids {
			p.XClaimJustID(s.ctx, &goredis.XClaimArgs{Stream: stream, Group: s.group, Consumer: s.consumer, Messages: list})
		}
		return nil
	})
	return err
}

func (s *subscription) nextNack() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, n := range s.nacks {
		if first.IsZero() || n.due.Before(first) {
			first = n.due
		}
	}
	return first, !first.IsZero()
}

// redeliverNacks claims the nacked entries whose delay has passed (XCLAIM
// counts a delivery) and delivers them with their delivery count.
func (s *subscription) redeliverNacks() error {
	now := time.Now()
	s.mu.Lock()
	var due []nackReq
	keep := s.nacks[:0]
	for _, n := range s.nacks {
		if !n.due.After(now) {
			due = append(due, n)
		} else {
			keep = append(keep, n)
		}
	}
	s.nacks = keep
	s.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	byStream := map[string][]string{}
	for _, n := range due {
		byStream[n.stream] = append(byStream[n.stream], n.id)
	}
	var batch []entry
	for stream, ids := range byStream {
		msgs, err := s.t.client.XClaim(s.ctx, &goredis.XClaimArgs{Stream: stream, Group: s.group, Consumer: s.consumer, Messages: ids}).Result()
		if err != nil {
			s.mu.Lock()
			for _, id := range ids {
				s.nacks = append(s.nacks, nackReq{stream: stream, id: id, due: now})
			}
			s.mu.Unlock()
			return err
		}
		got, err := s.withAttempts(s.known[stream], msgs)
		if err != nil {
			return err
		}
		batch = append(batch, got...)
	}
	return s.deliver(batch)
}

// reclaim takes over the entries of the group idle for longer than the
// claim idle time (their consumer crashed, closed or forgot them).
func (s *subscription) reclaim() error {
	for _, key := range s.streams {
		start := "0-0"
		for range 16 {
			msgs, next, err := s.t.client.XAutoClaim(s.ctx, &goredis.XAutoClaimArgs{
				Stream: key, Group: s.group, Consumer: s.consumer, MinIdle: s.t.o.claimIdle, Start: start, Count: s.batch,
			}).Result()
			if isNoGroup(err) {
				break
			}
			if err != nil {
				return err
			}
			if len(msgs) > 0 {
				batch, err := s.withAttempts(s.known[key], msgs)
				if err != nil {
					return err
				}
				if err := s.deliver(batch); err != nil {
					return err
				}
			}
			if next == "0-0" || next == "" || s.ctx.Err() != nil {
				break
			}
			start = next
		}
	}
	return nil
}

// withAttempts reads each entry's delivery count from the pending list.
func (s *subscription) withAttempts(a *streamAcker, msgs []goredis.XMessage) ([]entry, error) {
	cmds := make([]*goredis.XPendingExtCmd, len(msgs))
	_, err := s.t.client.Pipelined(s.ctx, func(p goredis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.XPendingExt(s.ctx, &goredis.XPendingExtArgs{Stream: a.stream, Group: s.group, Start: m.ID, End: m.ID, Count: 1})
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	out := make([]entry, 0, len(msgs))
	for i, m := range msgs {
		attempt := 2
		if p, err := cmds[i].Result(); err == nil && len(p) == 1 {
			attempt = int(p[0].RetryCount)
		}
		out = append(out, entry{acker: a, msg: m, attempt: attempt})
	}
	return out, nil
}
