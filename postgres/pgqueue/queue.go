package pgqueue

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
	"github.com/eventkit/eventkit/postgres/internal/pgsql"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Option configures a Transport.
type Option func(*Transport)

// WithTable sets the name of the queue's table, optionally
// schema-qualified (default "eventkit_queue"); its companion tables are
// <name>_groups and <name>_work.
func WithTable(name string) Option { return func(q *Transport) { q.name = name } }

// WithVisibilityTimeout sets how long a claimed message stays invisible to
// other consumers (default 30s). A message neither acked nor nacked within
// it, for example because its consumer died, is delivered again.
func WithVisibilityTimeout(d time.Duration) Option {
	return func(q *Transport) {
		if d > 0 {
			q.visibility = d
		}
	}
}

// WithPollInterval sets how often an idle subscription looks for messages
// without a notification (default 250ms): the fallback for lost
// notifications, and the pace at which nacked and timed-out messages come
// back.
func WithPollInterval(d time.Duration) Option {
	return func(q *Transport) {
		if d > 0 {
			q.poll = d
		}
	}
}

// WithBatchSize sets how many messages a subscription claims at once
// (default 100, never more than its free buffer).
func WithBatchSize(n int) Option {
	return func(q *Transport) {
		if n > 0 {
			q.batch = n
		}
	}
}

// WithRetention sets how long published messages are kept (default 7
// days); older ones are deleted, consumed or not.
func WithRetention(d time.Duration) Option {
	return func(q *Transport) {
		if d > 0 {
			q.retention = d
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(q *Transport) {
		if l != nil {
			q.logger = l
		}
	}
}

// DefaultBuffer is the buffer of a subscription that sets none.
const DefaultBuffer = 64

// Transport is an eventkit transport on PostgreSQL tables: Publish inserts, and
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
type Transport struct {
	pool       *pgxpool.Pool
	name       string
	visibility time.Duration
	poll       time.Duration
	batch      int
	retention  time.Duration
	logger     *slog.Logger

	table, groups, work, claims string
	channel                     string
	lockKey                     int32

	closed   atomic.Bool
	mu       sync.Mutex
	subs     map[*subscription]struct{}
	listenOn bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	lastKeep atomic.Int64
	notifyCh chan struct{}
}

// New returns a queue transport on pool, creating its tables if they do
// not exist. The queue does not close pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Transport, error) {
	q := &Transport{pool: pool, name: "eventkit_queue", visibility: 30 * time.Second, poll: 250 * time.Millisecond,
		batch: 100, retention: 7 * 24 * time.Hour, logger: slog.Default(), subs: map[*subscription]struct{}{}}
	for _, o := range opts {
		o(q)
	}
	var err error
	if q.table, err = pgsql.Ident(q.name, ""); err != nil {
		return nil, err
	}
	q.groups, _ = pgsql.Ident(q.name, "_groups")
	q.work, _ = pgsql.Ident(q.name, "_work")
	q.claims, _ = pgsql.Ident(q.name, "_claims")
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
	q.notifyCh = make(chan struct{}, 1)
	q.wg.Add(1)
	go q.notifier()
	return q, nil
}

func (q *Transport) migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + q.table + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
			topic text NOT NULL,
			event bytea NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(q.name, "_xid") + ` ON ` + q.table + ` (xid, id)`,
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
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(q.name, "_work_group") + ` ON ` + q.work + ` (group_name, seq)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(q.name, "_work_msg") + ` ON ` + q.work + ` (msg_id)`,
		`CREATE TABLE IF NOT EXISTS ` + q.claims + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			group_name text NOT NULL,
			msg_ids bigint[] NOT NULL,
			expires_at timestamptz NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(q.name, "_claims_group") + ` ON ` + q.claims + ` (group_name, expires_at)`,
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
func (q *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
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
	if _, err := q.pool.Exec(ctx, `INSERT INTO `+q.table+` (topic, event)
		SELECT $1, e FROM unnest($2::bytea[]) WITH ORDINALITY AS u(e, n) ORDER BY n`, name, bodies); err != nil {
		return fmt.Errorf("postgres: queue publish: %w", err)
	}
	// Wake this process's subscriptions at once, and the others through a
	// NOTIFY sent after the commit by the notifier (see notifier).
	q.wakeAll()
	select {
	case q.notifyCh <- struct{}{}:
	default:
	}
	return nil
}

// notifier sends one NOTIFY for any number of publishes that committed while
// the previous one was in flight. A NOTIFY inside the publishing transaction
// would serialize the commits of all publishers (PostgreSQL holds a global
// lock from a notifying transaction's pre-commit until its commit is
// flushed); a NOTIFY of its own writes no WAL and holds that lock briefly.
func (q *Transport) notifier() {
	defer q.wg.Done()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-q.notifyCh:
		}
		ctx, cancel := context.WithTimeout(q.ctx, 10*time.Second)
		if _, err := q.pool.Exec(ctx, `SELECT pg_notify($1, '')`, q.channel); err != nil && q.ctx.Err() == nil {
			q.logger.Warn("postgres queue: NOTIFY failed; subscribers of other processes poll", "err", err)
		}
		cancel()
	}
}

// Subscribe starts a subscription. With eventkit.WithGroup it joins (or
// creates) a persistent consumer group; members of one group must use the
// same pattern.
func (q *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
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
		buffer = DefaultBuffer
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
	s := &subscription{q: q, group: group, ephemeral: ephemeral, buffer: buffer,
		out: make(chan *eventkit.Message, 2*buffer), wake: make(chan struct{}, 1),
		acks: make(chan ackReq, 4*buffer), held: map[*msgRef]*eventkit.Message{}, claims: map[int64]*claimReq{},
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
func (q *Transport) Close() error {
	q.mu.Lock()
	if q.closed.Swap(true) {
		q.mu.Unlock()
		return nil
	}
	subs := make([]*subscription, 0, len(q.subs))
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

func (q *Transport) listen() {
	defer q.wg.Done()
	fails := 0
	for q.ctx.Err() == nil {
		err := pgsql.Listen(q.ctx, q.pool, q.channel, q.wakeAll)
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

func (q *Transport) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s := range q.subs {
		s.poke()
	}
}

func (q *Transport) dropGroup(s *subscription) {
	if !s.ephemeral {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM `+q.work+` WHERE group_name = $1`, s.group)
	b.Queue(`DELETE FROM `+q.claims+` WHERE group_name = $1`, s.group)
	b.Queue(`DELETE FROM `+q.groups+` WHERE name = $1`, s.group)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil {
		q.logger.Warn("postgres queue: dropping a subscription's group", "group", s.group, "err", err)
	}
}

// housekeep deletes expired messages and the groups of subscriptions that
// died without closing, at most once a minute per Transport.
func (q *Transport) housekeep(ctx context.Context) {
	now := time.Now().UnixNano()
	last := q.lastKeep.Load()
	if now-last < int64(time.Minute) || !q.lastKeep.CompareAndSwap(last, now) {
		return
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM ` + q.work + ` WHERE group_name IN (SELECT name FROM ` + q.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes')`)
	b.Queue(`DELETE FROM ` + q.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes'`)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil && ctx.Err() == nil {
		q.logger.Warn("postgres queue: housekeeping", "err", err)
	}
	// Expired messages, oldest first through the primary key (no index on
	// created_at to slow publishing), in bounded steps.
	for range 100 {
		tag, err := q.pool.Exec(ctx, `WITH o AS (SELECT id FROM (SELECT id, created_at FROM `+q.table+` ORDER BY id LIMIT 10000) x
				WHERE x.created_at < now() - $1::interval),
			w AS (DELETE FROM `+q.work+` WHERE msg_id IN (SELECT id FROM o))
			DELETE FROM `+q.table+` WHERE id IN (SELECT id FROM o)`, q.retention)
		if err != nil {
			if ctx.Err() == nil {
				q.logger.Warn("postgres queue: deleting expired messages", "err", err)
			}
			return
		}
		if tag.RowsAffected() < 10000 {
			return
		}
	}
}

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
type subscription struct {
	q         *Transport
	group     string
	ephemeral bool
	buffer    int

	out  chan *eventkit.Message
	wake chan struct{}
	acks chan ackReq

	mu     sync.Mutex
	held   map[*msgRef]*eventkit.Message // delivered (or buffered) and not settled
	claims map[int64]*claimReq
	closed bool

	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	stopCtx  func() bool
	ackWG    sync.WaitGroup
	timersMu sync.Mutex
	timers   []*time.Timer
}

// claimReq is a claim row: fresh messages taken together.
type claimReq struct {
	id   int64
	left int // messages not settled yet
}

// msgRef is a delivered message's place: its claim, or its work row.
type msgRef struct {
	claim *claimReq
	seq   int64 // work row, when claim is nil
	msgID int64
	at    time.Time
}

// ackReq is a batched settlement: a finished claim or an acked work row.
type ackReq struct{ claim, seq int64 }

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

// Err returns nil: a subscription ends only by Close or its context;
// database errors are logged and retried.
func (s *subscription) Err() error { return nil }

func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) Close() error {
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

func (s *subscription) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	s.ackWG.Add(1)
	go s.ackLoop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-stopped
		s.shutdown()
	}()
	fails := 0
	lastSeen, lastRenew := time.Now(), time.Now()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if time.Since(lastRenew) >= s.q.visibility/3 {
			lastRenew = time.Now()
			s.renew(ctx)
		}
		s.expire(ctx)
		s.mu.Lock()
		free := s.buffer - len(s.held)
		s.mu.Unlock()
		got, want := 0, 0
		if free > 0 {
			want = min(free, s.q.batch)
			n, err := s.fetch(ctx, want)
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
		if got > 0 && got >= want {
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

func (s *subscription) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
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
	if _, err := s.q.pool.Exec(ctx, `UPDATE `+s.q.claims+` SET expires_at = now() + $2::interval WHERE id = ANY($1)`,
		ids, s.q.visibility); err != nil && ctx.Err() == nil {
		s.q.logger.Warn("postgres queue: renewing claims", "group", s.group, "err", err)
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
	for ref, m := range s.held {
		if now.Sub(ref.at) < s.q.visibility {
			continue
		}
		delete(s.held, ref)
		if ref.claim != nil {
			msgIDs = append(msgIDs, ref.msgID)
			attempts = append(attempts, int32(m.Attempt))
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
	b.Queue(`INSERT INTO `+s.q.work+` (group_name, msg_id, visible_at, attempt)
		SELECT $1, m, now(), a FROM unnest($2::bigint[], $3::int[]) AS u(m, a)`, s.group, msgIDs, attempts)
	b.Queue(`DELETE FROM `+s.q.claims+` WHERE id = ANY($1)`, done)
	if err := s.q.pool.SendBatch(ctx, b).Close(); err != nil && ctx.Err() == nil {
		s.q.logger.Warn("postgres queue: returning timed-out messages", "group", s.group, "err", err)
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

// fetch takes over the expired claims of dead members, claims work rows,
// and claims fresh messages by moving the group's offset, in one round trip.
func (s *subscription) fetch(ctx context.Context, n int) (int, error) {
	q := s.q
	b := &pgx.Batch{}
	// Claims and offsets are committed without waiting for the WAL flush: a
	// crash can only lose the last ones, and the messages they covered are
	// delivered again (at-least-once). Publishes stay synchronous.
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`)
	b.Queue(`WITH x AS (DELETE FROM `+q.claims+` WHERE id IN (SELECT id FROM `+q.claims+`
			WHERE group_name = $1 AND expires_at < now() LIMIT 16 FOR UPDATE SKIP LOCKED) RETURNING msg_ids)
		INSERT INTO `+q.work+` (group_name, msg_id, visible_at, attempt)
		SELECT $1, m, now(), 1 FROM x, unnest(x.msg_ids) WITH ORDINALITY AS u(m, o)`, s.group)
	b.Queue(`UPDATE `+q.work+` w SET visible_at = now() + $3::interval, attempt = w.attempt + 1
		FROM (SELECT seq FROM `+q.work+` WHERE group_name = $1 AND visible_at <= now()
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) c, `+q.table+` m
		WHERE w.seq = c.seq AND m.id = w.msg_id
		RETURNING 0::bigint, w.seq, w.msg_id, w.attempt, m.topic, m.event`, s.group, n, q.visibility)
	b.Queue(`WITH g AS (SELECT cur_xid, cur_id, regex FROM `+q.groups+` WHERE name = $1 FOR UPDATE),
		s AS (SELECT m.id, m.xid, m.topic, m.event, m.topic ~ (SELECT regex FROM g) AS match FROM `+q.table+` m
			WHERE (m.xid, m.id) > ((SELECT cur_xid FROM g), (SELECT cur_id FROM g))
				AND m.xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY m.xid, m.id LIMIT $2),
		l AS (SELECT xid, id FROM s ORDER BY xid DESC, id DESC LIMIT 1),
		u AS (UPDATE `+q.groups+` SET cur_xid = l.xid, cur_id = l.id FROM l WHERE name = $1),
		c AS (INSERT INTO `+q.claims+` (group_name, msg_ids, expires_at)
			SELECT $1, array_agg(id ORDER BY xid, id), now() + $3::interval FROM s WHERE match HAVING count(*) > 0
			RETURNING id)
		SELECT (SELECT id FROM c), 0::bigint, s.id, 1, s.topic, s.event FROM s WHERE match ORDER BY s.xid, s.id`,
		s.group, n, q.visibility)
	b.Queue(`COMMIT`)
	br := q.pool.SendBatch(ctx, b)
	rowsOf := func() ([]claimedRow, error) {
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
	var err error
	for range 3 { // BEGIN, SET, take-over
		if err == nil {
			_, err = br.Exec()
		}
	}
	var retry, fresh []claimedRow
	if err == nil {
		retry, err = rowsOf()
	}
	if err == nil {
		fresh, err = rowsOf()
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
		return 0, err
	}
	slices.SortFunc(retry, func(a, b claimedRow) int { return cmpInt64(a.seq, b.seq) })
	now := time.Now()
	var claim *claimReq
	if len(fresh) > 0 {
		claim = &claimReq{id: fresh[0].claim, left: len(fresh)}
		s.mu.Lock()
		s.claims[claim.id] = claim
		s.mu.Unlock()
	}
	for i, r := range append(retry, fresh...) {
		ref := &msgRef{seq: r.seq, msgID: r.msgID, at: now}
		if i >= len(retry) {
			ref.claim = claim
		}
		e, err := eventkit.UnmarshalEvent(r.body)
		if err != nil {
			// Cannot happen for rows written by Publish; drop it rather than
			// block the group.
			q.logger.Error("postgres queue: undecodable message dropped", "group", s.group, "id", r.msgID, "err", err)
			m := eventkit.NewMessage(r.topic, event.New(), r.attempt, s, ref)
			s.mu.Lock()
			s.held[ref] = m
			s.mu.Unlock()
			_ = m.Ack()
			continue
		}
		m := eventkit.NewMessage(r.topic, e, r.attempt, s, ref)
		s.mu.Lock()
		s.held[ref] = m
		s.mu.Unlock()
		select {
		case s.out <- m:
		case <-s.stop:
			// shutdown gives it back with the other held messages.
		}
	}
	return len(retry) + len(fresh), nil
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

// settle removes m from the held messages; it reports the claim that m
// finished (0 if none) and whether m was still held.
func (s *subscription) settle(m *eventkit.Message) (ref *msgRef, finished int64, ok bool, err error) {
	ref, _ = m.Raw().(*msgRef)
	if s.closed {
		return nil, 0, false, eventkit.ErrClosed
	}
	if ref == nil || s.held[ref] != m {
		return ref, 0, false, nil // settled late: it was given back already
	}
	delete(s.held, ref)
	if ref.claim != nil {
		if ref.claim.left--; ref.claim.left == 0 {
			delete(s.claims, ref.claim.id)
			finished = ref.claim.id
		}
	}
	return ref, finished, true, nil
}

// Ack implements eventkit.Acknowledger. Acks are batched: a claim row is
// deleted once all its messages were settled, a work row at once; Close
// flushes them.
func (s *subscription) Ack(m *eventkit.Message) error {
	s.mu.Lock()
	ref, finished, ok, err := s.settle(m)
	if ok {
		// Sent under the lock, so that shutdown (which sets closed under
		// it) flushes every ack.
		if finished != 0 {
			s.acks <- ackReq{claim: finished}
		} else if ref.claim == nil {
			s.acks <- ackReq{seq: ref.seq}
		}
	}
	s.mu.Unlock()
	if ok {
		s.poke()
	}
	return err
}

// Nack implements eventkit.Acknowledger: the message becomes visible again
// after delay.
func (s *subscription) Nack(m *eventkit.Message, _ error, delay time.Duration) error {
	s.mu.Lock()
	ref, finished, ok, err := s.settle(m)
	s.mu.Unlock()
	if !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	if ref.claim != nil {
		b.Queue(`INSERT INTO `+s.q.work+` (group_name, msg_id, visible_at, attempt) VALUES ($1, $2, now() + $3::interval, $4)`,
			s.group, ref.msgID, delay, m.Attempt)
		if finished != 0 {
			b.Queue(`DELETE FROM `+s.q.claims+` WHERE id = $1`, finished)
		}
	} else {
		b.Queue(`UPDATE `+s.q.work+` SET visible_at = now() + $2::interval WHERE seq = $1`, ref.seq, delay)
	}
	if err := s.q.pool.SendBatch(ctx, b).Close(); err != nil {
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

func (s *subscription) ackLoop() {
	defer s.ackWG.Done()
	var claims, seqs []int64
	for a := range s.acks {
		claims, seqs = claims[:0], seqs[:0]
		add := func(a ackReq) {
			if a.claim != 0 {
				claims = append(claims, a.claim)
			} else {
				seqs = append(seqs, a.seq)
			}
		}
		add(a)
	drain:
		for len(claims)+len(seqs) < 1024 {
			select {
			case a, ok := <-s.acks:
				if !ok {
					break drain
				}
				add(a)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(`SET LOCAL synchronous_commit = off`) // a lost ack redelivers
		if len(claims) > 0 {
			b.Queue(`DELETE FROM `+s.q.claims+` WHERE id = ANY($1)`, claims)
		}
		if len(seqs) > 0 {
			b.Queue(`DELETE FROM `+s.q.work+` WHERE seq = ANY($1)`, seqs)
		}
		b.Queue(`COMMIT`)
		err := s.q.pool.SendBatch(ctx, b).Close()
		cancel()
		if err != nil {
			s.q.logger.Warn("postgres queue: ack failed; the messages will be delivered again", "group", s.group, "err", err)
		}
	}
}

// shutdown flushes the acks and gives back what the subscription holds:
// the messages never taken from the channel keep their attempt count.
func (s *subscription) shutdown() {
	s.mu.Lock()
	s.closed = true
	close(s.acks)
	held := s.held
	claims := s.claims
	s.held, s.claims = nil, nil
	s.mu.Unlock()
	s.ackWG.Wait()
	s.timersMu.Lock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.timersMu.Unlock()
	untaken := map[*msgRef]bool{}
	for {
		select {
		case m := <-s.out:
			if ref, _ := m.Raw().(*msgRef); ref != nil {
				untaken[ref] = true
			}
			continue
		default:
		}
		break
	}
	close(s.out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !s.ephemeral {
		var msgIDs []int64
		var attempts []int32
		var seqsTaken, seqsUntaken, claimIDs []int64
		for ref, m := range held {
			a := m.Attempt
			if untaken[ref] {
				a--
			}
			switch {
			case ref.claim != nil:
				msgIDs = append(msgIDs, ref.msgID)
				attempts = append(attempts, int32(a))
			case untaken[ref]:
				seqsUntaken = append(seqsUntaken, ref.seq)
			default:
				seqsTaken = append(seqsTaken, ref.seq)
			}
		}
		for id := range claims {
			claimIDs = append(claimIDs, id)
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO `+s.q.work+` (group_name, msg_id, visible_at, attempt)
			SELECT $1, m, now(), a FROM unnest($2::bigint[], $3::int[]) AS u(m, a)`, s.group, msgIDs, attempts)
		b.Queue(`DELETE FROM `+s.q.claims+` WHERE id = ANY($1)`, claimIDs)
		b.Queue(`UPDATE `+s.q.work+` SET visible_at = now(), attempt = greatest(attempt - 1, 0) WHERE seq = ANY($1)`, seqsUntaken)
		b.Queue(`UPDATE `+s.q.work+` SET visible_at = now() WHERE seq = ANY($1)`, seqsTaken)
		if err := s.q.pool.SendBatch(ctx, b).Close(); err != nil {
			s.q.logger.Warn("postgres queue: giving back held messages; they come back after the visibility timeout", "group", s.group, "err", err)
		}
	}
	s.q.dropGroup(s)
	// Wake the other members of the group for what was given back.
	s.q.wakeAll()
}

var (
	_ eventkit.Publisher    = (*Transport)(nil)
	_ eventkit.Subscriber   = (*Transport)(nil)
	_ eventkit.Acknowledger = (*subscription)(nil)
	_                       = errors.New
)
