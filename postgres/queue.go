package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// QueueTable sets the name of the queue's table, optionally
// schema-qualified (default "eventkit_queue"); its companion tables are
// <name>_groups and <name>_work.
func QueueTable(name string) QueueOption { return func(q *Queue) { q.name = name } }

// QueueVisibilityTimeout sets how long a claimed message stays invisible to
// other consumers (default 30s). A message neither acked nor nacked within
// it, for example because its consumer died, is delivered again.
func QueueVisibilityTimeout(d time.Duration) QueueOption {
	return func(q *Queue) {
		if d > 0 {
			q.visibility = d
		}
	}
}

// QueuePollInterval sets how often an idle subscription looks for messages
// without a notification (default 250ms): the fallback for lost
// notifications, and the pace at which nacked and timed-out messages come
// back.
func QueuePollInterval(d time.Duration) QueueOption {
	return func(q *Queue) {
		if d > 0 {
			q.poll = d
		}
	}
}

// QueueBatchSize sets how many messages a subscription claims at once
// (default 100, never more than its free buffer).
func QueueBatchSize(n int) QueueOption {
	return func(q *Queue) {
		if n > 0 {
			q.batch = n
		}
	}
}

// QueueRetention sets how long published messages are kept (default 7
// days); older ones are deleted, consumed or not.
func QueueRetention(d time.Duration) QueueOption {
	return func(q *Queue) {
		if d > 0 {
			q.retention = d
		}
	}
}

// QueueLogger sets the logger (default slog.Default()).
func QueueLogger(l *slog.Logger) QueueOption {
	return func(q *Queue) {
		if l != nil {
			q.logger = l
		}
	}
}

// QueueDefaultBuffer is the buffer of a subscription that sets none.
const QueueDefaultBuffer = 64

// Queue is an eventkit transport on PostgreSQL tables: Publish inserts, and
// subscriptions claim with FOR UPDATE SKIP LOCKED, woken by LISTEN/NOTIFY
// (with polling as the fallback).
//
// Each consumer group (and each subscription without a group, as a group of
// its own that ends with it) has an offset in the message table and a work
// list. A member moves the offset forward by copying the messages after it
// that match the group's pattern into the work list, and claims from the
// work list. The offset is (transaction id, row id), and only rows of
// transactions older than every transaction still running
// (pg_snapshot_xmin(pg_current_snapshot())) are taken: a row that commits
// late with a lower id is never skipped. A long-running transaction on the
// server therefore delays delivery (never loses it).
//
// Ack deletes the work row (acks are batched; Close flushes them); Nack makes
// it visible again after the delay; a claimed row not settled within the
// visibility timeout becomes visible again. A group keeps its offset and work
// list while it has no member; a group created by Subscribe starts at the
// current end, or at the oldest retained message with eventkit.FromStart.
// Events with a key are delivered to a group in publish order (a later
// redelivery, after a nack or a timeout, can overtake); several members of
// a group process in parallel, so strict per-key processing needs one member.
type Queue struct {
	pool       *pgxpool.Pool
	name       string
	visibility time.Duration
	poll       time.Duration
	batch      int
	retention  time.Duration
	logger     *slog.Logger

	table, groups, work string
	channel             string
	lockKey             int32

	closed   atomic.Bool
	mu       sync.Mutex
	subs     map[*queueSub]struct{}
	listenOn bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	lastKeep atomic.Int64
}

// NewQueue returns a queue transport on pool, creating its tables if they do
// not exist. The queue does not close pool.
func NewQueue(ctx context.Context, pool *pgxpool.Pool, opts ...QueueOption) (*Queue, error) {
	q := &Queue{pool: pool, name: "eventkit_queue", visibility: 30 * time.Second, poll: 250 * time.Millisecond,
		batch: 100, retention: 7 * 24 * time.Hour, logger: slog.Default(), subs: map[*queueSub]struct{}{}}
	for _, o := range opts {
		o(q)
	}
	var err error
	if q.table, err = outboxIdent(q.name, ""); err != nil {
		return nil, err
	}
	q.groups, _ = outboxIdent(q.name, "_groups")
	q.work, _ = outboxIdent(q.name, "_work")
	h := fnv.New64a()
	_, _ = h.Write([]byte(q.name))
	sum := h.Sum64()
	q.channel = fmt.Sprintf("eventkit_queue_%016x", sum)
	q.lockKey = int32(sum >> 32)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	if err := q.migrate(ctx); err != nil {
		q.cancel()
		return nil, err
	}
	return q, nil
}

func (q *Queue) migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + q.table + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
			topic text NOT NULL,
			event bytea NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX IF NOT EXISTS ` + outboxIndexName(q.name, "_xid") + ` ON ` + q.table + ` (xid, id)`,
		`CREATE INDEX IF NOT EXISTS ` + outboxIndexName(q.name, "_created") + ` ON ` + q.table + ` (created_at)`,
		`CREATE TABLE IF NOT EXISTS ` + q.groups + ` (
			name text PRIMARY KEY,
			pattern text NOT NULL,
			regex text NOT NULL,
			cur_xid xid8 NOT NULL,
			cur_id bigint NOT NULL,
			ephemeral boolean NOT NULL,
			seen_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS ` + q.work + ` (
			seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			group_name text NOT NULL,
			msg_id bigint NOT NULL,
			visible_at timestamptz NOT NULL DEFAULT now(),
			attempt int NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS ` + outboxIndexName(q.name, "_work_group") + ` ON ` + q.work + ` (group_name, seq)`,
		`CREATE INDEX IF NOT EXISTS ` + outboxIndexName(q.name, "_work_msg") + ` ON ` + q.work + ` (msg_id)`,
	}
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, -1)`, q.lockKey); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: queue migrate: %w", err)
	}
	return nil
}

// Publish inserts the events, in order, in one transaction, and notifies
// the subscribers at its commit.
func (q *Queue) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("postgres: queue publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("postgres: queue publish: %w", err)
	}
	if q.closed.Load() {
		return eventkit.ErrClosed
	}
	if len(events) == 0 {
		return nil
	}
	bodies := make([][]byte, len(events))
	for i, e := range events {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("postgres: queue publish: encoding event %q: %w", e.ID(), err)
		}
		bodies[i] = b
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO `+q.table+` (topic, event) SELECT $1, e FROM unnest($2::bytea[]) WITH ORDINALITY AS u(e, n) ORDER BY n`, name, bodies)
	b.Queue(`SELECT pg_notify($1, '')`, q.channel)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: queue publish: %w", err)
	}
	return nil
}

// Subscribe starts a subscription. With eventkit.WithGroup it joins (or
// creates) a persistent consumer group; members of one group must use the
// same pattern.
func (q *Queue) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("postgres: queue subscribe: %w", err)
	}
	if q.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	buffer := cfg.Buffer
	if buffer <= 0 {
		buffer = QueueDefaultBuffer
	}
	group, ephemeral := cfg.Group, false
	if group == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		group, ephemeral = "~"+hex.EncodeToString(b[:]), true
	}
	var have string
	err := q.pool.QueryRow(ctx, `INSERT INTO `+q.groups+` (name, pattern, regex, cur_xid, cur_id, ephemeral)
		VALUES ($1, $2, $3, CASE WHEN $4 THEN '0'::xid8 ELSE pg_snapshot_xmin(pg_current_snapshot()) END, 0, $5)
		ON CONFLICT (name) DO UPDATE SET seen_at = now()
		RETURNING pattern`, group, pattern, topic.Regexp(pattern).String(), cfg.FromStart, ephemeral).Scan(&have)
	if err != nil {
		return nil, fmt.Errorf("postgres: queue subscribe: %w", err)
	}
	if have != pattern {
		return nil, fmt.Errorf("postgres: queue subscribe: group %q already subscribes to %q, not %q", group, have, pattern)
	}
	s := &queueSub{q: q, group: group, ephemeral: ephemeral, buffer: buffer,
		out: make(chan *eventkit.Message, buffer), wake: make(chan struct{}, 1),
		acks: make(chan int64, 4*buffer), held: map[int64]*eventkit.Message{},
		stop: make(chan struct{}), done: make(chan struct{})}
	q.mu.Lock()
	if q.closed.Load() {
		q.mu.Unlock()
		q.dropGroup(s)
		return nil, eventkit.ErrClosed
	}
	q.subs[s] = struct{}{}
	if !q.listenOn {
		q.listenOn = true
		q.wg.Add(1)
		go q.listen()
	}
	q.mu.Unlock()
	go s.run()
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
	return s, nil
}

// Close ends every subscription (flushing their acks and releasing the
// messages they hold) and makes Publish return eventkit.ErrClosed. It does
// not close the pool.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed.Swap(true) {
		q.mu.Unlock()
		return nil
	}
	subs := make([]*queueSub, 0, len(q.subs))
	for s := range q.subs {
		subs = append(subs, s)
	}
	q.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	q.cancel()
	q.wg.Wait()
	return nil
}

func (q *Queue) listen() {
	defer q.wg.Done()
	fails := 0
	for q.ctx.Err() == nil {
		err := pgListen(q.ctx, q.pool, q.channel, q.wakeAll)
		if q.ctx.Err() != nil {
			return
		}
		q.logger.Warn("postgres queue: LISTEN failed; polling meanwhile", "err", err)
		fails = min(fails+1, 6)
		t := time.NewTimer(time.Duration(1<<fails) * 50 * time.Millisecond)
		select {
		case <-q.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (q *Queue) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s := range q.subs {
		s.poke()
	}
}

func (q *Queue) dropGroup(s *queueSub) {
	if !s.ephemeral {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM `+q.work+` WHERE group_name = $1`, s.group)
	b.Queue(`DELETE FROM `+q.groups+` WHERE name = $1`, s.group)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil {
		q.logger.Warn("postgres queue: dropping a subscription's group", "group", s.group, "err", err)
	}
}

// housekeep deletes expired messages and the groups of subscriptions that
// died without closing, at most once a minute per Queue.
func (q *Queue) housekeep(ctx context.Context) {
	now := time.Now().UnixNano()
	last := q.lastKeep.Load()
	if now-last < int64(time.Minute) || !q.lastKeep.CompareAndSwap(last, now) {
		return
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM ` + q.work + ` WHERE group_name IN (SELECT name FROM ` + q.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes')`)
	b.Queue(`DELETE FROM ` + q.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes'`)
	b.Queue(`DELETE FROM `+q.work+` WHERE msg_id IN (SELECT id FROM `+q.table+` WHERE created_at < now() - $1::interval)`, q.retention)
	b.Queue(`DELETE FROM `+q.table+` WHERE created_at < now() - $1::interval`, q.retention)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil && ctx.Err() == nil {
		q.logger.Warn("postgres queue: housekeeping", "err", err)
	}
}

// queueSub is one subscription: a member of a group.
type queueSub struct {
	q         *Queue
	group     string
	ephemeral bool
	buffer    int

	out  chan *eventkit.Message
	wake chan struct{}
	acks chan int64

	mu     sync.Mutex
	held   map[int64]*eventkit.Message // claimed and not settled (buffered or taken)
	closed bool

	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	stopCtx  func() bool
	ackWG    sync.WaitGroup
	timersMu sync.Mutex
	timers   []*time.Timer
}

func (s *queueSub) Messages() <-chan *eventkit.Message { return s.out }

// Err returns nil: a subscription ends only by Close or its context;
// database errors are logged and retried.
func (s *queueSub) Err() error { return nil }

func (s *queueSub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *queueSub) Close() error {
	s.once.Do(func() {
		if s.stopCtx != nil {
			s.stopCtx()
		}
		close(s.stop)
		<-s.done
		s.q.mu.Lock()
		delete(s.q.subs, s)
		s.q.mu.Unlock()
	})
	return nil
}

func (s *queueSub) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	s.ackWG.Add(1)
	go s.ackLoop()
	defer func() {
		cancel()
		s.shutdown()
	}()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	fails := 0
	lastSeen := time.Now()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.mu.Lock()
		free := s.buffer - len(s.held)
		s.mu.Unlock()
		got := 0
		if free > 0 {
			n, err := s.fetch(ctx, min(free, s.q.batch))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.q.logger.Warn("postgres queue: claiming messages", "group", s.group, "err", err)
				fails = min(fails+1, 6)
				if !s.sleep(time.Duration(1<<fails) * 20 * time.Millisecond) {
					return
				}
				continue
			}
			fails = 0
			got = n
		}
		if time.Since(lastSeen) > 30*time.Second {
			lastSeen = time.Now()
			if _, err := s.q.pool.Exec(ctx, `UPDATE `+s.q.groups+` SET seen_at = now() WHERE name = $1`, s.group); err != nil && ctx.Err() == nil {
				s.q.logger.Warn("postgres queue: group heartbeat", "group", s.group, "err", err)
			}
			s.q.housekeep(ctx)
		}
		if got > 0 && got == min(free, s.q.batch) {
			continue // more may be waiting
		}
		t := time.NewTimer(s.q.poll)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *queueSub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

type queueClaimed struct {
	seq     int64
	attempt int
	topic   string
	body    []byte
}

// fetch moves the group's offset forward and claims up to n messages, in
// one round trip, and hands them to the subscription.
func (s *queueSub) fetch(ctx context.Context, n int) (int, error) {
	q := s.q
	b := &pgx.Batch{}
	b.Queue(`WITH g AS (SELECT cur_xid, cur_id, regex FROM `+q.groups+` WHERE name = $1 FOR UPDATE SKIP LOCKED),
		s AS (SELECT m.id, m.xid, m.topic FROM `+q.table+` m, g
			WHERE (m.xid, m.id) > (g.cur_xid, g.cur_id) AND m.xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY m.xid, m.id LIMIT $2),
		ins AS (INSERT INTO `+q.work+` (group_name, msg_id)
			SELECT $1, s.id FROM s, g WHERE s.topic ~ g.regex ORDER BY s.xid, s.id),
		l AS (SELECT xid, id FROM s ORDER BY xid DESC, id DESC LIMIT 1)
		UPDATE `+q.groups+` SET cur_xid = l.xid, cur_id = l.id FROM l WHERE name = $1`, s.group, max(n, 500))
	b.Queue(`UPDATE `+q.work+` w SET visible_at = now() + $3::interval, attempt = w.attempt + 1
		FROM (SELECT seq FROM `+q.work+` WHERE group_name = $1 AND visible_at <= now()
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) c, `+q.table+` m
		WHERE w.seq = c.seq AND m.id = w.msg_id
		RETURNING w.seq, w.attempt, m.topic, m.event`, s.group, n, q.visibility)
	br := q.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return 0, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return 0, err
	}
	var claimed []queueClaimed
	for rows.Next() {
		var c queueClaimed
		if err := rows.Scan(&c.seq, &c.attempt, &c.topic, &c.body); err != nil {
			rows.Close()
			_ = br.Close()
			return 0, err
		}
		claimed = append(claimed, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		_ = br.Close()
		return 0, err
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	slices.SortFunc(claimed, func(a, b queueClaimed) int { return int(a.seq - b.seq) })
	for _, c := range claimed {
		e, err := eventkit.UnmarshalEvent(c.body)
		if err != nil {
			// Cannot happen for rows written by Publish; drop it rather than
			// block the group.
			q.logger.Error("postgres queue: undecodable message dropped", "group", s.group, "seq", c.seq, "err", err)
			s.enqueueAck(c.seq)
			continue
		}
		m := eventkit.NewMessage(c.topic, e, c.attempt, s, c.seq)
		s.mu.Lock()
		s.held[c.seq] = m
		s.mu.Unlock()
		select {
		case s.out <- m:
		case <-s.stop:
			return len(claimed), nil
		}
	}
	return len(claimed), nil
}

func (s *queueSub) enqueueAck(seq int64) {
	s.acks <- seq
}

// Ack implements eventkit.Acknowledger: the work row is deleted (batched
// with other acks; Close flushes them).
func (s *queueSub) Ack(m *eventkit.Message) error {
	seq := m.Raw().(int64)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return eventkit.ErrClosed
	}
	if s.held[seq] == m {
		delete(s.held, seq)
	}
	// Sent under the lock, so that shutdown (which sets closed under it)
	// sees every ack before it flushes.
	s.acks <- seq
	s.mu.Unlock()
	s.poke()
	return nil
}

// Nack implements eventkit.Acknowledger: the work row becomes visible again
// after delay.
func (s *queueSub) Nack(m *eventkit.Message, _ error, delay time.Duration) error {
	seq := m.Raw().(int64)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return eventkit.ErrClosed
	}
	if s.held[seq] == m {
		delete(s.held, seq)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.q.pool.Exec(ctx, `UPDATE `+s.q.work+` SET visible_at = now() + $2::interval WHERE seq = $1`, seq, delay); err != nil {
		return fmt.Errorf("postgres: queue nack: %w", err)
	}
	if delay <= 0 {
		s.poke()
	} else {
		s.timersMu.Lock()
		s.timers = append(s.timers, time.AfterFunc(delay, s.poke))
		s.timersMu.Unlock()
	}
	return nil
}

func (s *queueSub) ackLoop() {
	defer s.ackWG.Done()
	batch := make([]int64, 0, 512)
	for seq := range s.acks {
		batch = append(batch[:0], seq)
	drain:
		for len(batch) < cap(batch) {
			select {
			case seq, ok := <-s.acks:
				if !ok {
					break drain
				}
				batch = append(batch, seq)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := s.q.pool.Exec(ctx, `DELETE FROM `+s.q.work+` WHERE seq = ANY($1)`, batch)
		cancel()
		if err != nil {
			s.q.logger.Warn("postgres queue: ack failed; the messages will be delivered again", "group", s.group, "n", len(batch), "err", err)
		}
	}
}

// shutdown flushes the acks and releases what the subscription holds: the
// messages never taken from the channel keep their attempt count.
func (s *queueSub) shutdown() {
	s.mu.Lock()
	s.closed = true
	close(s.acks)
	held := s.held
	s.held = nil
	s.mu.Unlock()
	s.ackWG.Wait()
	s.timersMu.Lock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.timersMu.Unlock()
	var untaken, taken []int64
	for {
		select {
		case m := <-s.out:
			seq := m.Raw().(int64)
			if held[seq] == m {
				untaken = append(untaken, seq)
				delete(held, seq)
			}
			continue
		default:
		}
		break
	}
	for seq := range held {
		taken = append(taken, seq)
	}
	close(s.out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !s.ephemeral && (len(untaken) > 0 || len(taken) > 0) {
		b := &pgx.Batch{}
		b.Queue(`UPDATE `+s.q.work+` SET visible_at = now(), attempt = greatest(attempt - 1, 0) WHERE seq = ANY($1)`, untaken)
		b.Queue(`UPDATE `+s.q.work+` SET visible_at = now() WHERE seq = ANY($1)`, taken)
		if err := s.q.pool.SendBatch(ctx, b).Close(); err != nil {
			s.q.logger.Warn("postgres queue: releasing held messages; they come back after the visibility timeout", "group", s.group, "err", err)
		}
	}
	s.q.dropGroup(s)
	// Wake the other members of the group for the released messages.
	s.q.wakeAll()
}

var (
	_ eventkit.Publisher    = (*Queue)(nil)
	_ eventkit.Subscriber   = (*Queue)(nil)
	_ eventkit.Acknowledger = (*queueSub)(nil)
	_                       = errors.New
)
