package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
	goredis "github.com/redis/go-redis/v9"
)

// subscription is the driver subscription of one group (named or private)
// on every stream its pattern covers. ReceiveBatch (called by one goroutine
// at a time) discovers new topics, redelivers due nacks, reclaims idle
// entries and reads new ones; a keeper goroutine keeps the entries it holds
// claimed (read and not yet taken by the application, or nacked and
// waiting for their delay), so that no other member reclaims them.
type subscription struct {
	d        *drv
	pattern  string
	wildcard bool
	group    string
	private  bool
	consumer string
	startID  string // where a new group starts on the streams known at Subscribe
	batch    int64

	heldMu sync.Mutex
	held   map[string]map[string]struct{} // stream -> ids read, not delivered yet

	// Owned by ReceiveBatch (and by start, before it runs).
	streams      []string
	known        map[string]string // stream -> topic
	ready        []entry           // read, not returned yet
	lastClaim    time.Time
	lastDiscover time.Time

	mu    sync.Mutex // guards nacks
	nacks []nackReq

	stop       context.CancelFunc
	stopCtx    context.Context
	keeperDone chan struct{}
}

// ackID identifies an entry; ReceiveBatch hands out pointers to them.
type ackID struct{ stream, id string }

type nackReq struct {
	stream, id string
	due        time.Time
}

// entry is a stream entry about to be returned.
type entry struct {
	stream  string
	msg     goredis.XMessage
	attempt int
}

func newSubscription(d *drv, pattern string, cfg driver.Config, startID string) *subscription {
	s := &subscription{
		d:          d,
		pattern:    pattern,
		wildcard:   topic.IsPattern(pattern),
		group:      cfg.Group,
		consumer:   consumerName(),
		startID:    startID,
		batch:      int64(cfg.MaxBatch),
		held:       make(map[string]map[string]struct{}),
		known:      make(map[string]string),
		keeperDone: make(chan struct{}),
	}
	if s.group == "" {
		s.private = true
		s.group = "eventkit-private-" + randomHex(8)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
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
	names, err := s.d.client.SMembers(ctx, s.d.registryKey()).Result()
	if err != nil {
		return fmt.Errorf("redis: subscribe %q: read topic registry: %w", s.pattern, err)
	}
	for _, name := range names {
		if !topic.Match(s.pattern, name) {
			continue
		}
		if _, ok := s.known[s.d.streamKey(name)]; ok {
			continue
		}
		if err := s.addStream(ctx, name, startID); err != nil {
			return err
		}
	}
	return nil
}

func (s *subscription) addStream(ctx context.Context, name, startID string) error {
	key := s.d.streamKey(name)
	if err := s.d.client.XGroupCreateMkStream(ctx, key, s.group, startID).Err(); err != nil && !isBusyGroup(err) {
		return fmt.Errorf("redis: subscribe %q: create group %q on %q: %w", s.pattern, s.group, key, err)
	}
	s.streams = append(s.streams, key)
	s.known[key] = name
	return nil
}

// ReceiveBatch returns up to max entries: those left from the last round,
// else those of one new round (see step).
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if len(s.ready) == 0 {
		if err := s.step(ctx); err != nil {
			if errors.Is(err, goredis.ErrClosed) {
				return nil, driver.Permanent(err)
			}
			return nil, err
		}
	}
	n := min(max, len(s.ready))
	out := s.decode(s.ready[:n])
	clear(s.ready[:n])
	s.ready = s.ready[n:]
	return out, nil
}

// decode turns entries into messages. An entry that is not a valid
// CloudEvent is acked and logged.
func (s *subscription) decode(entries []entry) []*driver.Message {
	if len(entries) == 0 {
		return nil
	}
	msgs := make([]driver.Message, len(entries))
	ids := make([]ackID, len(entries))
	out := make([]*driver.Message, 0, len(entries))
	for i, en := range entries {
		ev, err := decode(en.msg.Values)
		if err != nil {
			s.drop(en, err)
			continue
		}
		ids[i] = ackID{en.stream, en.msg.ID}
		msgs[i] = driver.Message{Topic: s.known[en.stream], Event: ev, Attempt: en.attempt, Position: en.msg.ID, ID: &ids[i], Raw: en.msg}
		out = append(out, &msgs[i])
	}
	return out
}

// drop acks an entry that is not a valid CloudEvent, and logs it. The ack
// is best effort: a failed one leaves the entry to be read (and dropped)
// again.
func (s *subscription) drop(en entry, err error) {
	s.d.o.Logger.Error("redis: dropping an entry that is not a valid CloudEvent", "stream", en.stream, "id", en.msg.ID, "err", err)
	s.release(en.stream, en.msg.ID)
	if err := s.d.client.XAck(s.stopCtx, en.stream, s.group, en.msg.ID).Err(); err != nil {
		s.d.o.Logger.Warn("redis: ack of a dropped entry failed", "stream", en.stream, "id", en.msg.ID, "err", err)
	}
}

// hold adds entries read from Redis to s.ready; the keeper keeps them
// claimed until the application takes them.
func (s *subscription) hold(entries ...entry) {
	s.ready = append(s.ready, entries...)
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for _, en := range entries {
		h := s.held[en.stream]
		if h == nil {
			h = make(map[string]struct{})
			s.held[en.stream] = h
		}
		h[en.msg.ID] = struct{}{}
	}
}

func (s *subscription) release(stream, id string) {
	s.heldMu.Lock()
	delete(s.held[stream], id)
	s.heldMu.Unlock()
}

// Delivered releases an entry the application took: from now on, only the
// claim idle time protects it.
func (s *subscription) Delivered(id driver.AckID) {
	a := id.(*ackID)
	s.release(a.stream, a.id)
}

// SendAcks acks the entries with one pipelined XACK per stream.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	byStream := make(map[string][]string, 1)
	for _, id := range ids {
		a := id.(*ackID)
		byStream[a.stream] = append(byStream[a.stream], a.id)
	}
	_, err := s.d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for stream, ids := range byStream {
			p.XAck(ctx, stream, s.group, ids...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: XACK in group %q: %w", s.group, err)
	}
	return nil
}

// SendNacks records the nacks: ReceiveBatch claims each entry again once
// its delay has passed (XCLAIM counts a delivery), and the keeper keeps it
// claimed meanwhile.
func (s *subscription) SendNacks(_ context.Context, nacks []driver.Nack) error {
	now := time.Now()
	s.mu.Lock()
	for _, n := range nacks {
		a := n.ID.(*ackID)
		s.nacks = append(s.nacks, nackReq{stream: a.stream, id: a.id, due: now.Add(n.Delay)})
	}
	s.mu.Unlock()
	return nil
}

// Shutdown stops the keeper and destroys a private group, within ctx.
// Entries taken and not settled stay pending in a named group, for a
// member to reclaim.
func (s *subscription) Shutdown(ctx context.Context) error {
	s.stop()
	<-s.keeperDone
	if !s.private {
		return nil
	}
	var errs []error
	for _, key := range s.streams {
		if err := s.d.client.XGroupDestroy(ctx, key, s.group).Err(); err != nil {
			errs = append(errs, fmt.Errorf("redis: destroy private group %q on %q: %w", s.group, key, err))
		}
	}
	return errors.Join(errs...)
}

// Close is Shutdown with no bound but the client's own timeouts.
func (s *subscription) Close() error { return s.Shutdown(context.Background()) }

func (s *subscription) touchEvery() time.Duration { return max(s.d.o.claimIdle/4, 10*time.Millisecond) }

// step does one round: discover new topics, redeliver due nacks, reclaim
// idle entries, read new entries; what it gets goes to s.ready.
func (s *subscription) step(ctx context.Context) error {
	now := time.Now()
	if s.wildcard && now.Sub(s.lastDiscover) >= s.d.o.discover {
		// Topics registered after Subscribe have only entries published
		// after it: their group starts at the beginning.
		if err := s.discover(ctx, "0"); err != nil {
			return err
		}
		s.lastDiscover = now
	}
	if err := s.redeliverNacks(ctx); err != nil || len(s.ready) > 0 {
		return err
	}
	if now.Sub(s.lastClaim) >= s.touchEvery() {
		if err := s.reclaim(ctx); err != nil {
			return err
		}
		s.lastClaim = now
		if len(s.ready) > 0 {
			return nil
		}
	}
	return s.read(ctx)
}

// read waits for new entries with XREADGROUP, no longer than the block
// time, the next nack's due time or the next discovery.
func (s *subscription) read(ctx context.Context) error {
	block := min(s.d.o.block, s.touchEvery())
	if due, ok := s.nextNack(); ok {
		block = min(block, max(time.Until(due), time.Millisecond))
	}
	if s.wildcard {
		block = min(block, max(time.Until(s.lastDiscover.Add(s.d.o.discover)), time.Millisecond))
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
	res, err := s.d.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: s.group, Consumer: s.consumer, Streams: ids, Count: s.batch, Block: block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if isNoGroup(err) {
		// A stream was deleted (and maybe recreated): create the group
		// again from its start.
		for _, key := range s.streams {
			if err := s.d.client.XGroupCreateMkStream(ctx, key, s.group, "0").Err(); err != nil && !isBusyGroup(err) {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	var got []entry
	for _, st := range res {
		for _, m := range st.Messages {
			if m.Values != nil { // nil: a deleted (trimmed) entry
				got = append(got, entry{stream: st.Stream, msg: m, attempt: 1})
			}
		}
	}
	s.hold(got...)
	return nil
}

// startKeeper starts the goroutine that keeps held entries claimed; Close
// stops it.
func (s *subscription) startKeeper() {
	go func() {
		defer close(s.keeperDone)
		t := time.NewTicker(s.touchEvery())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := s.touch(s.stopCtx); err != nil && s.stopCtx.Err() == nil {
					s.d.o.Logger.Warn("redis: keeping entries claimed failed", "group", s.group, "err", err)
				}
			case <-s.stopCtx.Done():
				return
			}
		}
	}()
}

// touch resets the idle time of the entries this subscription holds (read
// and not yet taken, or nacked and waiting for their delay), with XCLAIM
// JUSTID, which does not count a delivery.
func (s *subscription) touch(ctx context.Context) error {
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
	_, err := s.d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for stream, list := range ids {
			p.XClaimJustID(ctx, &goredis.XClaimArgs{Stream: stream, Group: s.group, Consumer: s.consumer, Messages: list})
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
// counts a delivery) with their delivery count.
func (s *subscription) redeliverNacks(ctx context.Context) error {
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
	for stream, ids := range byStream {
		msgs, err := s.d.client.XClaim(ctx, &goredis.XClaimArgs{Stream: stream, Group: s.group, Consumer: s.consumer, Messages: ids}).Result()
		if err != nil {
			s.mu.Lock()
			for _, id := range ids {
				s.nacks = append(s.nacks, nackReq{stream: stream, id: id, due: now})
			}
			s.mu.Unlock()
			return err
		}
		if err := s.withAttempts(ctx, stream, msgs); err != nil {
			return err
		}
	}
	return nil
}

// reclaim takes over the entries of the group idle for longer than the
// claim idle time (their consumer crashed, closed or forgot them), a batch
// at most.
func (s *subscription) reclaim(ctx context.Context) error {
	for _, key := range s.streams {
		if int64(len(s.ready)) >= s.batch {
			return nil // the rest waits for the next round
		}
		start := "0-0"
		for range 16 {
			msgs, next, err := s.d.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
				Stream: key, Group: s.group, Consumer: s.consumer, MinIdle: s.d.o.claimIdle, Start: start, Count: s.batch,
			}).Result()
			if isNoGroup(err) {
				break
			}
			if err != nil {
				return err
			}
			if len(msgs) > 0 {
				if err := s.withAttempts(ctx, key, msgs); err != nil {
					return err
				}
			}
			if next == "0-0" || next == "" || ctx.Err() != nil || int64(len(s.ready)) >= s.batch {
				break
			}
			start = next
		}
	}
	return nil
}

// withAttempts reads each entry's delivery count from the pending list and
// adds the entries to s.ready.
func (s *subscription) withAttempts(ctx context.Context, stream string, msgs []goredis.XMessage) error {
	cmds := make([]*goredis.XPendingExtCmd, len(msgs))
	_, err := s.d.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: stream, Group: s.group, Start: m.ID, End: m.ID, Count: 1})
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	got := make([]entry, 0, len(msgs))
	for i, m := range msgs {
		if m.Values == nil {
			continue // deleted (trimmed) entry
		}
		attempt := 2
		if p, err := cmds[i].Result(); err == nil && len(p) == 1 {
			attempt = int(p[0].RetryCount)
		}
		got = append(got, entry{stream: stream, msg: m, attempt: attempt})
	}
	s.hold(got...)
	return nil
}

var (
	_ driver.Subscription     = (*subscription)(nil)
	_ driver.Shutdowner       = (*subscription)(nil)
	_ driver.DeliveryObserver = (*subscription)(nil)
	_ eventkit.Capable        = (*drv)(nil)
)
