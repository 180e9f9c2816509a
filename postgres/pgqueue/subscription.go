package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// emptyReturn is how long ReceiveBatch waits for messages before it
// returns none (the driver contract asks for a return every few seconds).
const emptyReturn = 2 * time.Second

// subscription is one subscription: a member of a group.
//
// Fresh messages are claimed as a range: the member moves the group's offset
// forward and records the message ids it took as one claim row, renewed
// while the member lives; acks are counted in memory and the claim row is
// deleted when every message of it was settled. Only exceptions write a row
// per message into the work table: a nack, a message held past the
// visibility timeout, a message still held at Close, and the messages of a
// dead member's expired claim. Work rows are claimed with FOR UPDATE SKIP
// LOCKED and stay invisible for the visibility timeout.
//
// ReceiveBatch claims; a keeper goroutine renews the claims, gives back
// what was held past the visibility timeout, and keeps the group alive.
type subscription struct {
	d         *drv
	group     string
	ephemeral bool
	// limit bounds the messages held (returned by ReceiveBatch and not
	// settled by SendAcks or SendNacks): the subscription's buffer. It is
	// also what lets the other members of a group claim their share.
	limit int

	wake chan struct{} // capacity 1: something may be claimable

	mu     sync.Mutex
	held   map[*msgRef]struct{} // returned by ReceiveBatch and not settled
	claims map[int64]*claimRef

	keepCtx    context.Context
	keepCancel context.CancelFunc
	keepDone   chan struct{}

	timersMu sync.Mutex
	timers   []*time.Timer
}

// claimRef is a claim row: fresh messages taken together.
type claimRef struct {
	id   int64
	left int // messages not settled yet
}

// msgRef is a received message's place (its driver.AckID): its claim, or
// its work row.
type msgRef struct {
	claim   *claimRef
	seq     int64 // work row, when claim is nil
	msgID   int64
	attempt int
	at      time.Time   // claimed at
	taken   atomic.Bool // the application took it (Delivered)
}

func newSubscription(d *drv, group string, ephemeral bool, buffer int) *subscription {
	s := &subscription{d: d, group: group, ephemeral: ephemeral, limit: buffer,
		wake: make(chan struct{}, 1), held: map[*msgRef]struct{}{}, claims: map[int64]*claimRef{},
		keepDone: make(chan struct{})}
	s.keepCtx, s.keepCancel = context.WithCancel(context.Background())
	go s.keep()
	return s
}

func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// free is how many more messages the subscription may hold.
func (s *subscription) free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit - len(s.held)
}

// ReceiveBatch claims up to max messages (fewer while the subscription
// holds close to its limit), waiting for a notification or the poll
// interval while there are none.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	deadline := time.Now().Add(emptyReturn)
	for {
		if want := min(s.free(), s.d.o.batch, max); want > 0 {
			msgs, err := s.fetch(ctx, want)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("pgqueue: claiming messages for group %q: %w", s.group, err)
			}
			if len(msgs) > 0 {
				return msgs, nil
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		t := time.NewTimer(min(s.d.o.poll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Delivered records that the application took the message: at Shutdown, a
// message it never took is given back without counting an attempt.
func (s *subscription) Delivered(id driver.AckID) {
	if ref, ok := id.(*msgRef); ok {
		ref.taken.Store(true)
	}
}

// keep renews the claims, gives back the messages held past the
// visibility timeout, and marks the group alive, until Shutdown.
func (s *subscription) keep() {
	defer close(s.keepDone)
	ctx := s.keepCtx
	lastSeen, lastRenew := time.Now(), time.Now()
	t := time.NewTicker(min(s.d.o.poll, s.d.o.visibility/3))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastRenew) >= s.d.o.visibility/3 {
			lastRenew = time.Now()
			s.renew(ctx)
		}
		s.expire(ctx)
		if time.Since(lastSeen) > 30*time.Second {
			lastSeen = time.Now()
			if _, err := s.d.pool.Exec(ctx, `UPDATE `+s.d.groups+` SET seen_at = now() WHERE name = $1`, s.group); err != nil && ctx.Err() == nil {
				s.d.o.Logger.Warn("pgqueue: group heartbeat", "group", s.group, "err", err)
			}
			s.d.housekeep(ctx)
		}
	}
}

// renew extends the member's claim rows, so that only a dead member's
// claims expire.
func (s *subscription) renew(ctx context.Context) {
	s.mu.Lock()
	ids := make([]int64, 0, len(s.claims))
	for id := range s.claims {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if _, err := s.d.pool.Exec(ctx, `UPDATE `+s.d.claims+` SET expires_at = now() + $2::interval WHERE id = ANY($1)`,
		ids, s.d.o.visibility); err != nil && ctx.Err() == nil {
		s.d.o.Logger.Warn("pgqueue: renewing claims", "group", s.group, "err", err)
	}
}

// expire gives back the messages held past the visibility timeout: a fresh
// one becomes a work row, visible now; a work row is visible again already.
func (s *subscription) expire(ctx context.Context) {
	now := time.Now()
	var msgIDs []int64
	var attempts []int32
	var done []int64
	s.mu.Lock()
	for ref := range s.held {
		if now.Sub(ref.at) < s.d.o.visibility {
			continue
		}
		delete(s.held, ref)
		if ref.claim != nil {
			msgIDs = append(msgIDs, ref.msgID)
			attempts = append(attempts, int32(ref.attempt))
			if ref.claim.left--; ref.claim.left == 0 {
				delete(s.claims, ref.claim.id)
				done = append(done, ref.claim.id)
			}
		}
	}
	s.mu.Unlock()
	if len(msgIDs) == 0 {
		return
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO `+s.d.work+` (group_name, msg_id, visible_at, attempt)
		SELECT $1, m, now(), a FROM unnest($2::bigint[], $3::int[]) AS u(m, a)`, s.group, msgIDs, attempts)
	b.Queue(`DELETE FROM `+s.d.claims+` WHERE id = ANY($1)`, done)
	if err := s.d.pool.SendBatch(ctx, b).Close(); err != nil && ctx.Err() == nil {
		s.d.o.Logger.Warn("pgqueue: returning timed-out messages", "group", s.group, "err", err)
	}
}

type claimedRow struct {
	claim   int64
	seq     int64
	msgID   int64
	attempt int
	topic   string
	body    []byte
}

// fetch claims up to n messages and returns them; the messages that are
// not CloudEvents are acked and logged instead.
func (s *subscription) fetch(ctx context.Context, n int) ([]*driver.Message, error) {
	retry, fresh, err := s.claim(ctx, n)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(retry, func(a, b claimedRow) int { return cmpInt64(a.seq, b.seq) })
	now := time.Now()
	var claim *claimRef
	if len(fresh) > 0 {
		claim = &claimRef{id: fresh[0].claim, left: len(fresh)}
	}
	out := make([]*driver.Message, 0, len(retry)+len(fresh))
	var bad []driver.AckID
	s.mu.Lock()
	if claim != nil {
		s.claims[claim.id] = claim
	}
	for i, r := range append(retry, fresh...) {
		ref := &msgRef{seq: r.seq, msgID: r.msgID, attempt: r.attempt, at: now}
		if i >= len(retry) {
			ref.claim = claim
		}
		s.held[ref] = struct{}{}
		e, err := eventkit.UnmarshalEvent(r.body)
		if err != nil {
			// Cannot happen for rows written by Publish; ack it rather than
			// block the group.
			s.d.o.Logger.Error("pgqueue: message dropped", "group", s.group, "id", r.msgID,
				"err", fmt.Errorf("%w: %w", eventkit.ErrNotCloudEvent, err))
			bad = append(bad, ref)
			continue
		}
		out = append(out, &driver.Message{Topic: r.topic, Event: e, Attempt: r.attempt, Position: strconv.FormatInt(r.msgID, 10), ID: ref})
	}
	s.mu.Unlock()
	if len(bad) > 0 {
		if err := s.SendAcks(ctx, bad); err != nil {
			s.d.o.Logger.Warn("pgqueue: acking dropped messages", "group", s.group, "err", err)
		}
	}
	return out, nil
}

// claim takes over the expired claims of dead members, claims work rows
// (retry), and claims fresh messages by moving the group's offset (fresh),
// in one round trip.
func (s *subscription) claim(ctx context.Context, n int) (retry, fresh []claimedRow, err error) {
	d := s.d
	b := &pgx.Batch{}
	// Claims and offsets are committed without waiting for the WAL flush: a
	// crash can only lose the last ones, and the messages they covered are
	// delivered again (at-least-once). Publishes stay synchronous.
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`)
	b.Queue(`WITH x AS (DELETE FROM `+d.claims+` WHERE id IN (SELECT id FROM `+d.claims+`
			WHERE group_name = $1 AND expires_at < now() LIMIT 16 FOR UPDATE SKIP LOCKED) RETURNING msg_ids)
		INSERT INTO `+d.work+` (group_name, msg_id, visible_at, attempt)
		SELECT $1, m, now(), 1 FROM x, unnest(x.msg_ids) WITH ORDINALITY AS u(m, o)`, s.group)
	b.Queue(`UPDATE `+d.work+` w SET visible_at = now() + $3::interval, attempt = w.attempt + 1
		FROM (SELECT seq FROM `+d.work+` WHERE group_name = $1 AND visible_at <= now()
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) c, `+d.table+` m
		WHERE w.seq = c.seq AND m.id = w.msg_id
		RETURNING 0::bigint, w.seq, w.msg_id, w.attempt, m.topic, m.event`, s.group, n, d.o.visibility)
	b.Queue(`WITH g AS (SELECT cur_xid, cur_id, regex FROM `+d.groups+` WHERE name = $1 FOR UPDATE),
		s AS (SELECT m.id, m.xid, m.topic, m.event, m.topic ~ (SELECT regex FROM g) AS match FROM `+d.table+` m
			WHERE (m.xid, m.id) > ((SELECT cur_xid FROM g), (SELECT cur_id FROM g))
				AND m.xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY m.xid, m.id LIMIT $2),
		l AS (SELECT xid, id FROM s ORDER BY xid DESC, id DESC LIMIT 1),
		u AS (UPDATE `+d.groups+` SET cur_xid = l.xid, cur_id = l.id FROM l WHERE name = $1),
		c AS (INSERT INTO `+d.claims+` (group_name, msg_ids, expires_at)
			SELECT $1, array_agg(id ORDER BY xid, id), now() + $3::interval FROM s WHERE match HAVING count(*) > 0
			RETURNING id)
		SELECT (SELECT id FROM c), 0::bigint, s.id, 1, s.topic, s.event FROM s WHERE match ORDER BY s.xid, s.id`,
		s.group, n, d.o.visibility)
	b.Queue(`COMMIT`)
	br := d.pool.SendBatch(ctx, b)
	for range 3 { // BEGIN, SET, take-over
		if err == nil {
			_, err = br.Exec()
		}
	}
	if err == nil {
		retry, err = scanClaimed(br)
	}
	if err == nil {
		fresh, err = scanClaimed(br)
	}
	if err == nil {
		var tag pgconn.CommandTag
		if tag, err = br.Exec(); err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("claim transaction ended with %s", tag)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	return retry, fresh, nil
}

// scanClaimed reads the next result of br: claimed rows.
func scanClaimed(br pgx.BatchResults) ([]claimedRow, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []claimedRow
	for rows.Next() {
		var r claimedRow
		if err := rows.Scan(&r.claim, &r.seq, &r.msgID, &r.attempt, &r.topic, &r.body); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// settle removes ref from the held messages (s.mu held); it reports the
// claim that ref finished (0 if none) and whether ref was still held (a
// message held past the visibility timeout was given back already).
func (s *subscription) settle(ref *msgRef) (finished int64, ok bool) {
	if _, held := s.held[ref]; !held {
		return 0, false
	}
	delete(s.held, ref)
	if ref.claim != nil {
		if ref.claim.left--; ref.claim.left == 0 {
			delete(s.claims, ref.claim.id)
			finished = ref.claim.id
		}
	}
	return finished, true
}

// SendAcks deletes the claim rows whose every message was settled and the
// acked work rows, in one transaction.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	var claims, seqs []int64
	s.mu.Lock()
	for _, id := range ids {
		ref := id.(*msgRef)
		finished, ok := s.settle(ref)
		switch {
		case !ok:
		case finished != 0:
			claims = append(claims, finished)
		case ref.claim == nil:
			seqs = append(seqs, ref.seq)
		}
	}
	s.mu.Unlock()
	s.poke() // room in the buffer
	if len(claims)+len(seqs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`) // a lost ack redelivers
	if len(claims) > 0 {
		b.Queue(`DELETE FROM `+s.d.claims+` WHERE id = ANY($1)`, claims)
	}
	if len(seqs) > 0 {
		b.Queue(`DELETE FROM `+s.d.work+` WHERE seq = ANY($1)`, seqs)
	}
	b.Queue(`COMMIT`)
	if err := s.d.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgqueue: ack (group %q): %w", s.group, err)
	}
	return nil
}

// SendNacks makes the messages visible again, each after its delay.
func (s *subscription) SendNacks(ctx context.Context, nacks []driver.Nack) error {
	b := &pgx.Batch{}
	s.mu.Lock()
	for _, n := range nacks {
		ref := n.ID.(*msgRef)
		finished, ok := s.settle(ref)
		if !ok {
			continue
		}
		if ref.claim != nil {
			b.Queue(`INSERT INTO `+s.d.work+` (group_name, msg_id, visible_at, attempt) VALUES ($1, $2, now() + $3::interval, $4)`,
				s.group, ref.msgID, n.Delay, ref.attempt)
			if finished != 0 {
				b.Queue(`DELETE FROM `+s.d.claims+` WHERE id = $1`, finished)
			}
		} else {
			b.Queue(`UPDATE `+s.d.work+` SET visible_at = now() + $2::interval WHERE seq = $1`, ref.seq, n.Delay)
		}
	}
	s.mu.Unlock()
	if b.Len() == 0 {
		return nil
	}
	if err := s.d.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgqueue: nack (group %q): %w", s.group, err)
	}
	s.poke()
	s.timersMu.Lock()
	for _, n := range nacks {
		if n.Delay > 0 {
			s.timers = append(s.timers, time.AfterFunc(n.Delay, s.poke))
		}
	}
	s.timersMu.Unlock()
	return nil
}

// Shutdown gives back what the subscription holds (the messages the
// application never took keep their attempt count), drops the group of a
// subscription without one, and wakes the other members, within ctx.
func (s *subscription) Shutdown(ctx context.Context) error {
	s.keepCancel()
	<-s.keepDone
	s.mu.Lock()
	held, claims := s.held, s.claims
	s.held, s.claims = nil, nil
	s.mu.Unlock()
	s.timersMu.Lock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.timersMu.Unlock()
	defer s.d.forget(s)
	var err error
	if !s.ephemeral {
		err = s.giveBack(ctx, held, claims)
	}
	err = errors.Join(err, s.d.dropGroup(ctx, s))
	// Wake the other members of the group for what was given back.
	s.d.wakeAll()
	return err
}

// giveBack makes the held messages visible again at once.
func (s *subscription) giveBack(ctx context.Context, held map[*msgRef]struct{}, claims map[int64]*claimRef) error {
	var msgIDs []int64
	var attempts []int32
	var seqsTaken, seqsUntaken, claimIDs []int64
	for ref := range held {
		taken := ref.taken.Load()
		a := ref.attempt
		if !taken {
			a--
		}
		switch {
		case ref.claim != nil:
			msgIDs = append(msgIDs, ref.msgID)
			attempts = append(attempts, int32(a))
		case !taken:
			seqsUntaken = append(seqsUntaken, ref.seq)
		default:
			seqsTaken = append(seqsTaken, ref.seq)
		}
	}
	for id := range claims {
		claimIDs = append(claimIDs, id)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO `+s.d.work+` (group_name, msg_id, visible_at, attempt)
		SELECT $1, m, now(), a FROM unnest($2::bigint[], $3::int[]) AS u(m, a)`, s.group, msgIDs, attempts)
	b.Queue(`DELETE FROM `+s.d.claims+` WHERE id = ANY($1)`, claimIDs)
	b.Queue(`UPDATE `+s.d.work+` SET visible_at = now(), attempt = greatest(attempt - 1, 0) WHERE seq = ANY($1)`, seqsUntaken)
	b.Queue(`UPDATE `+s.d.work+` SET visible_at = now() WHERE seq = ANY($1)`, seqsTaken)
	if err := s.d.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgqueue: giving back the messages held by group %q (they come back after the visibility timeout): %w", s.group, err)
	}
	return nil
}

// Close is Shutdown without a bound.
func (s *subscription) Close() error { return s.Shutdown(context.Background()) }

var (
	_ driver.Subscription     = (*subscription)(nil)
	_ driver.Shutdowner       = (*subscription)(nil)
	_ driver.DeliveryObserver = (*subscription)(nil)
)
