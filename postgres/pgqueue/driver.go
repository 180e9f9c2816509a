package pgqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/postgres/internal/pgsql"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// capabilities are what the queue driver guarantees.
const capabilities = eventkit.CapWildcards | eventkit.CapConsumerGroups | eventkit.CapNack |
	eventkit.CapNackDelay | eventkit.CapAttemptCount | eventkit.CapOrderPerKey |
	eventkit.CapPersistent | eventkit.CapFromStart | eventkit.CapBatchPublish |
	eventkit.CapStartAtTime | eventkit.CapStartAtPosition

// drv is the queue driver: a driver.Publisher and a driver.Subscriber in
// one value.
type drv struct {
	pool *pgxpool.Pool
	o    options

	table, groups, work, claims string
	channel                     string
	lockKey                     int32

	migrateMu sync.Mutex
	migrated  atomic.Bool

	mu       sync.Mutex
	subs     map[*subscription]struct{}
	listenOn bool
	ctx      context.Context // background work; cancelled by Shutdown
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	notifyOn sync.Once
	notifyCh chan struct{}
	lastKeep atomic.Int64
}

func newDriver(pool *pgxpool.Pool, o options) *drv {
	d := &drv{pool: pool, o: o, subs: map[*subscription]struct{}{}, notifyCh: make(chan struct{}, 1)}
	d.table, _ = pgsql.Ident(o.table, "") // WithTable checked it
	d.groups, _ = pgsql.Ident(o.table, "_groups")
	d.work, _ = pgsql.Ident(o.table, "_work")
	d.claims, _ = pgsql.Ident(o.table, "_claims")
	d.channel, d.lockKey = pgsql.Channel("eventkit_queue", o.table)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

func (d *drv) Capabilities() eventkit.Capabilities { return capabilities }

// ensureTables runs migrate once per driver (again after a failure).
func (d *drv) ensureTables(ctx context.Context) error {
	if d.migrated.Load() {
		return nil
	}
	d.migrateMu.Lock()
	defer d.migrateMu.Unlock()
	if d.migrated.Load() {
		return nil
	}
	if err := d.migrate(ctx); err != nil {
		return err
	}
	d.migrated.Store(true)
	return nil
}

func (d *drv) migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + d.table + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
			topic text NOT NULL,
			event bytea NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(d.o.table, "_xid") + ` ON ` + d.table + ` (xid, id)`,
		`CREATE TABLE IF NOT EXISTS ` + d.groups + ` (
			name text PRIMARY KEY,
			pattern text NOT NULL,
			regex text NOT NULL,
			cur_xid xid8 NOT NULL,
			cur_id bigint NOT NULL,
			ephemeral boolean NOT NULL,
			seen_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS ` + d.work + ` (
			seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			group_name text NOT NULL,
			msg_id bigint NOT NULL,
			visible_at timestamptz NOT NULL DEFAULT now(),
			attempt int NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(d.o.table, "_work_group") + ` ON ` + d.work + ` (group_name, seq)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(d.o.table, "_work_msg") + ` ON ` + d.work + ` (msg_id)`,
		`CREATE TABLE IF NOT EXISTS ` + d.claims + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			group_name text NOT NULL,
			msg_ids bigint[] NOT NULL,
			expires_at timestamptz NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(d.o.table, "_claims_group") + ` ON ` + d.claims + ` (group_name, expires_at)`,
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, -1)`, d.lockKey); err != nil {
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
		return fmt.Errorf("pgqueue: migrate: %w", err)
	}
	return nil
}

// SendBatch inserts the events, in order, in one statement, and notifies
// the subscribers after its commit.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	if err := d.ensureTables(ctx); err != nil {
		return err
	}
	bodies := make([][]byte, len(events))
	for i, e := range events {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("pgqueue: publish: encoding event %q: %w", e.ID(), err)
		}
		bodies[i] = b
	}
	if _, err := d.pool.Exec(ctx, `INSERT INTO `+d.table+` (topic, event)
		SELECT $1, e FROM unnest($2::bytea[]) WITH ORDINALITY AS u(e, n) ORDER BY n`, name, bodies); err != nil {
		return fmt.Errorf("pgqueue: publish: %w", err)
	}
	// Wake this process's subscriptions at once, and the others through a
	// NOTIFY sent after the commit by the notifier (see notifier).
	d.wakeAll()
	d.notifyOn.Do(func() {
		d.wg.Add(1)
		go d.notifier()
	})
	select {
	case d.notifyCh <- struct{}{}:
	default:
	}
	return nil
}

// notifier sends one NOTIFY for any number of publishes that committed while
// the previous one was in flight. A NOTIFY inside the publishing transaction
// would serialize the commits of all publishers (PostgreSQL holds a global
// lock from a notifying transaction's pre-commit until its commit is
// flushed); a NOTIFY of its own writes no WAL and holds that lock briefly.
func (d *drv) notifier() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.notifyCh:
		}
		// Bounded so that a hung connection does not stop the wake-ups for
		// good; the subscribers poll meanwhile.
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		if _, err := d.pool.Exec(ctx, `SELECT pg_notify($1, '')`, d.channel); err != nil && d.ctx.Err() == nil {
			d.o.Logger.Warn("pgqueue: NOTIFY failed; subscribers of other processes poll", "err", err)
		}
		cancel()
	}
}

// OpenSubscription joins (or creates) the subscription's group and
// registers the subscription for wake-ups.
func (d *drv) OpenSubscription(ctx context.Context, pattern string, cfg driver.Config) (driver.Subscription, error) {
	if len(cfg.Options) > 0 {
		return nil, eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("the pgqueue transport has no subscription option of type %T", cfg.Options[0]))
	}
	if err := d.ensureTables(ctx); err != nil {
		return nil, err
	}
	group, ephemeral := cfg.Group, false
	if group == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		group, ephemeral = "~"+hex.EncodeToString(b[:]), true
	}
	start, arg, err := d.startCursor(cfg)
	if err != nil {
		return nil, err
	}
	var have string
	err = d.pool.QueryRow(ctx, `INSERT INTO `+d.groups+` (name, pattern, regex, cur_xid, cur_id, ephemeral)
		SELECT $1, $2, $3, st.xid, st.id, $4 FROM (`+start+`) st
		ON CONFLICT (name) DO UPDATE SET seen_at = now()
		RETURNING pattern`, group, pattern, topic.Regexp(pattern).String(), ephemeral, arg).Scan(&have)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: subscribe: %w", err)
	}
	if have != pattern {
		return nil, fmt.Errorf("pgqueue: subscribe: group %q already subscribes to %q, not %q", group, have, pattern)
	}
	s := newSubscription(d, group, ephemeral, cfg.MaxBatch)
	d.mu.Lock()
	d.subs[s] = struct{}{}
	if !d.listenOn {
		d.listenOn = true
		d.wg.Add(1)
		go d.listen()
	}
	d.mu.Unlock()
	return s, nil
}

// Shutdown stops the notifier and the listener, within ctx. Package
// transport calls it after every publish returned and every subscription
// closed.
func (d *drv) Shutdown(ctx context.Context) error {
	d.cancel()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pgqueue: close: %w", context.Cause(ctx))
	}
}

// Close is Shutdown without a bound.
func (d *drv) Close() error { return d.Shutdown(context.Background()) }

func (d *drv) listen() {
	defer d.wg.Done()
	fails := 0
	for d.ctx.Err() == nil {
		err := pgsql.Listen(d.ctx, d.pool, d.channel, d.wakeAll)
		if d.ctx.Err() != nil {
			return
		}
		d.o.Logger.Warn("pgqueue: LISTEN failed; polling meanwhile", "err", err)
		fails = min(fails+1, 6)
		t := time.NewTimer(time.Duration(1<<fails) * 50 * time.Millisecond)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *drv) wakeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.subs {
		s.poke()
	}
}

func (d *drv) forget(s *subscription) {
	d.mu.Lock()
	delete(d.subs, s)
	d.mu.Unlock()
}

// dropGroup deletes the group of a subscription without a group, with its
// work and claim rows.
func (d *drv) dropGroup(ctx context.Context, s *subscription) error {
	if !s.ephemeral {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM `+d.work+` WHERE group_name = $1`, s.group)
	b.Queue(`DELETE FROM `+d.claims+` WHERE group_name = $1`, s.group)
	b.Queue(`DELETE FROM `+d.groups+` WHERE name = $1`, s.group)
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgqueue: dropping the group of subscription %q (removed by the housekeeping of a later subscription): %w", s.group, err)
	}
	return nil
}

// housekeep deletes expired messages and the groups of subscriptions that
// died without closing, at most once a minute per Transport.
func (d *drv) housekeep(ctx context.Context) {
	now := time.Now().UnixNano()
	last := d.lastKeep.Load()
	if now-last < int64(time.Minute) || !d.lastKeep.CompareAndSwap(last, now) {
		return
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM ` + d.work + ` WHERE group_name IN (SELECT name FROM ` + d.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes')`)
	b.Queue(`DELETE FROM ` + d.groups + ` WHERE ephemeral AND seen_at < now() - interval '10 minutes'`)
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil && ctx.Err() == nil {
		d.o.Logger.Warn("pgqueue: housekeeping", "err", err)
	}
	// Expired messages, oldest first through the primary key (no index on
	// created_at to slow publishing), in bounded steps.
	for range 100 {
		tag, err := d.pool.Exec(ctx, `WITH o AS (SELECT id FROM (SELECT id, created_at FROM `+d.table+` ORDER BY id LIMIT 10000) x
				WHERE x.created_at < now() - $1::interval),
			w AS (DELETE FROM `+d.work+` WHERE msg_id IN (SELECT id FROM o))
			DELETE FROM `+d.table+` WHERE id IN (SELECT id FROM o)`, d.o.retention)
		if err != nil {
			if ctx.Err() == nil {
				d.o.Logger.Warn("pgqueue: deleting expired messages", "err", err)
			}
			return
		}
		if tag.RowsAffected() < 10000 {
			return
		}
	}
}

var (
	_ driver.Publisher  = (*drv)(nil)
	_ driver.Subscriber = (*drv)(nil)
	_ driver.Shutdowner = (*drv)(nil)
)
