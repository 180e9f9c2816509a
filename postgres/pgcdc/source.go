package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/postgres/pgcdc/internal/pgrepl"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of a Source.
const (
	// ChangeType is the default CloudEvents type of row changes: the
	// type Debezium's CloudEvents converter gives them.
	ChangeType = "io.debezium.connector.postgresql.DataChangeEvent"
	// MessageType is the default type of logical decoding messages.
	MessageType = "io.debezium.connector.postgresql.LogicalDecodingMessage"
	// SourceVersion is the source.version of the envelopes (the field
	// Debezium fills with its connector version).
	SourceVersion = "eventkit-cdc/1"
)

// Source streams the changes of PostgreSQL tables, read from a logical
// replication slot with the pgoutput plugin, to an eventkit.Publisher as
// CloudEvents whose data is a Debezium-compatible envelope (package cdc).
//
// Each row change becomes one event: type ChangeType (WithType),
// source "/debezium/postgresql/<name>", subject "<schema>.<table>", the
// partitionkey extension "<schema>.<table>:<primary key as JSON>", id
// "<name>:<transaction end LSN>:<index in the transaction>" (stable across
// resends), time the commit time, published to the topic
// "<name>.<schema>.<table>" (WithTopic). A logical decoding message
// (pg_logical_emit_message) becomes an event of type MessageType with
// subject its prefix, on topic "<name>.message.<prefix>" (one sent outside
// a transaction has the id "<name>:<LSN>:m"). The events of one
// transaction share their time value, those of one table their subject
// value: change them with the setters of event.Event (which replace them),
// not in place.
//
// Events are published in commit order, each transaction whole before the
// next. The slot's confirmed (flushed) position advances only past
// transactions whose every event the Publisher accepted, so after a crash
// the changes after that position are sent again: delivery is at least
// once, in order per row. Run reconnects after a connection failure.
type Source struct {
	dsn      string
	pub      eventkit.Publisher
	opts     settings
	ceSource types.URIRef

	stats sourceStats
}

type settings struct {
	name         string
	tables       []string
	publication  string
	slot         string
	snapshot     bool
	protoVersion int
	heartbeat    time.Duration
	batch        int
	buffer       int
	changeType   func(*cdc.Change) string
	topicFn      func(*cdc.Change) string
	customType   bool // changeType was given (not the default)
	customTopic  bool // topicFn was given
	logger       *slog.Logger
	msgPrefixes  map[string]bool // nil: every prefix
	values       ValueModes      // Debezium's modes of the value mapping
	minBackoff   time.Duration
	maxBackoff   time.Duration
}

// Option configures a Source. An invalid value makes New fail with an error
// wrapping eventkit.ErrInvalidOption that names the option.
type Option func(*settings) error

// WithName sets the logical name of the source (source.name of the
// envelope, Debezium's topic.prefix; default "eventkit"); it must be a
// topic token.
func WithName(name string) Option {
	invalid := topic.ValidateName(name) != nil || strings.Contains(name, ".")
	return opt.Set("pgcdc.WithName", name, invalid, fmt.Sprintf("%q is not a topic token", name), func(o *settings) *string { return &o.name })
}

// WithTables sets the tables ("schema.table", or "table" for public)
// that the publication covers. The source creates the publication with
// them, or, when it exists, changes it to exactly them (ALTER PUBLICATION
// ... SET TABLE, logged): the rows of the tables added are emitted as a
// snapshot (op "r", when WithSnapshot is on) before streaming resumes,
// and the tables dropped are no longer streamed. Without tables, an
// existing publication is used as it is. The publication's comment records
// the tables added whose snapshot is not done yet, so that a failure or a
// crash before it ends does not skip it. A name with an empty part is
// refused.
func WithTables(tables ...string) Option {
	return func(o *settings) error {
		for _, t := range tables {
			schema, table, qualified := strings.Cut(t, ".")
			if t == "" || qualified && (schema == "" || table == "") {
				return eventkit.InvalidOption("pgcdc.WithTables", fmt.Sprintf("invalid table name %q", t))
			}
		}
		o.tables = append(o.tables, tables...)
		return nil
	}
}

// WithPublication names the publication (default "eventkit_<name>").
func WithPublication(name string) Option {
	return opt.NotEmpty("pgcdc.WithPublication", name, func(o *settings) *string { return &o.publication })
}

// WithSlot names the replication slot (default "eventkit_<name>").
func WithSlot(name string) Option {
	return opt.NotEmpty("pgcdc.WithSlot", name, func(o *settings) *string { return &o.slot })
}

// WithSnapshot sets whether the source, when it creates the slot, first
// emits every row of the published tables as it was at the slot's start
// (op "r"), read in a REPEATABLE READ transaction on the slot's exported
// snapshot. Default true.
func WithSnapshot(on bool) Option { return func(o *settings) error { o.snapshot = on; return nil } }

// WithProtoVersion sets the pgoutput protocol version, 1 (default) or 2.
// Transactions are never streamed before their commit.
func WithProtoVersion(v int) Option {
	return opt.Set("pgcdc.WithProtoVersion", v, v != 1 && v != 2, fmt.Sprintf("want 1 or 2, got %d", v), func(o *settings) *int { return &o.protoVersion })
}

// WithHeartbeat sets how often the source reports its position to the
// server and asks for a keepalive, which lets the slot advance over WAL
// that holds no change of the published tables (default 10s).
func WithHeartbeat(d time.Duration) Option {
	return opt.Positive("pgcdc.WithHeartbeat", d, func(o *settings) *time.Duration { return &o.heartbeat })
}

// WithBatch bounds the events given to one Publish call (default 512).
// The decoder hands a transaction's events to the publisher at its commit,
// or every n events of a larger transaction.
func WithBatch(n int) Option {
	return opt.Positive("pgcdc.WithBatch", n, func(o *settings) *int { return &o.batch })
}

// WithBuffer bounds the changes decoded ahead of the publisher
// (default 4096; counted in whole batches, at least one, plus the batch
// being filled).
func WithBuffer(n int) Option {
	return opt.Positive("pgcdc.WithBuffer", n, func(o *settings) *int { return &o.buffer })
}

// WithType sets the CloudEvents type of each change; fn must not be nil.
func WithType(fn func(*cdc.Change) string) Option {
	return opt.Set("pgcdc.WithType", fn, fn == nil, "the function must not be nil", func(o *settings) *func(*cdc.Change) string { return &o.changeType })
}

// WithTopic sets the topic each change is published to; fn must not be
// nil.
func WithTopic(fn func(*cdc.Change) string) Option {
	return opt.Set("pgcdc.WithTopic", fn, fn == nil, "the function must not be nil", func(o *settings) *func(*cdc.Change) string { return &o.topicFn })
}

// WithMessagePrefixes delivers only the logical decoding messages
// (pg_logical_emit_message) whose prefix is one of prefixes; by default
// every message of the database is delivered. With no prefixes, none is
// (the server is not asked for them).
func WithMessagePrefixes(prefixes ...string) Option {
	return func(o *settings) error {
		o.msgPrefixes = map[string]bool{}
		for _, p := range prefixes {
			o.msgPrefixes[p] = true
		}
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option {
	return opt.NotNil("pgcdc.WithLogger", "the logger", l, func(o *settings) **slog.Logger { return &o.logger })
}

// WithReconnect sets the bounds of the exponential delay between
// reconnection attempts (default 100ms to 5s): minDelay must be positive
// and maxDelay at least minDelay.
func WithReconnect(minDelay, maxDelay time.Duration) Option {
	return opt.Check("pgcdc.WithReconnect", minDelay <= 0 || maxDelay < minDelay, fmt.Sprintf("want 0 < minDelay <= maxDelay, got %s and %s", minDelay, maxDelay),
		func(o *settings) { o.minBackoff, o.maxBackoff = minDelay, maxDelay })
}

// New returns a source that reads the database at dsn and
// publishes to pub. It connects when Run is called. An invalid option
// value, a nil pub or a dsn that does not parse makes it fail with an error
// wrapping eventkit.ErrInvalidOption.
func New(dsn string, pub eventkit.Publisher, opts ...Option) (*Source, error) {
	o := settings{
		name: "eventkit", snapshot: true, protoVersion: 1, heartbeat: 10 * time.Second,
		batch: 512, buffer: 4096, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
		logger: slog.Default(),
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.publication == "" {
		o.publication = "eventkit_" + sanitize(o.name)
	}
	if o.slot == "" {
		o.slot = "eventkit_" + sanitize(o.name)
	}
	if pub == nil {
		return nil, eventkit.InvalidOption("pgcdc.New", "the publisher must not be nil")
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("%w: pgcdc.New: dsn: %w", eventkit.ErrInvalidOption, err)
	}
	name := o.name
	o.customType, o.customTopic = o.changeType != nil, o.topicFn != nil
	if o.changeType == nil {
		o.changeType = func(c *cdc.Change) string {
			if c.Op == cdc.OpMessage {
				return MessageType
			}
			return ChangeType
		}
	}
	if o.topicFn == nil {
		o.topicFn = func(c *cdc.Change) string {
			if c.Op == cdc.OpMessage {
				return name + ".message." + sanitize(c.Message.Prefix)
			}
			return name + "." + sanitize(c.Source.Schema) + "." + sanitize(c.Source.Table)
		}
	}
	srcURL, err := url.Parse("/debezium/postgresql/" + url.PathEscape(o.name))
	if err != nil {
		return nil, fmt.Errorf("postgres: cdc: source: %w", err)
	}
	return &Source{dsn: dsn, pub: pub, opts: o, ceSource: types.URIRef{URL: *srcURL}}, nil
}

// sanitize makes s a topic token: characters other than letters,
// digits, '-', '_' become '_'.
func sanitize(s string) string {
	if s == "" {
		return "_"
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Slot returns the name of the replication slot.
func (s *Source) Slot() string { return s.opts.slot }

// Publication returns the name of the publication.
func (s *Source) Publication() string { return s.opts.publication }

// Stats is a snapshot of a source's progress.
type Stats struct {
	Events       int64     // events published
	Transactions int64     // transactions published
	ServerLSN    uint64    // the server's WAL end, as last reported
	ConfirmedLSN uint64    // the slot's position confirmed to the server
	LastCommit   time.Time // commit time of the last published transaction
	LagBytes     int64     // ServerLSN - ConfirmedLSN (0 when negative or before the first confirmation)
	// LagSeconds is how long after its commit the last transaction was
	// published.
	LagSeconds float64
	Reconnects int64
}

type sourceStats struct {
	events, txs, serverLSN, confirmed, reconnects atomic.Int64
	lagNanos, lastCommit                          atomic.Int64
}

// Stats returns the progress of the source.
func (s *Source) Stats() Stats {
	st := Stats{
		Events: s.stats.events.Load(), Transactions: s.stats.txs.Load(),
		ServerLSN: uint64(s.stats.serverLSN.Load()), ConfirmedLSN: uint64(s.stats.confirmed.Load()),
		LagSeconds: time.Duration(s.stats.lagNanos.Load()).Seconds(), Reconnects: s.stats.reconnects.Load(),
	}
	if lc := s.stats.lastCommit.Load(); lc != 0 {
		st.LastCommit = time.Unix(0, lc)
	}
	if st.ConfirmedLSN != 0 && st.ServerLSN > st.ConfirmedLSN {
		st.LagBytes = int64(st.ServerLSN - st.ConfirmedLSN)
	}
	return st
}

// Run streams changes until ctx ends (then it returns nil). It creates the
// publication and the slot when missing, and takes the initial snapshot
// when it creates the slot. It reconnects after transient failures (a lost
// or refused connection, a server restarting, a publisher error), with
// exponential back-off. It returns at once, with a *ConfigError
// (errors.Is ErrConfig), when the configuration cannot work: wal_level
// not logical, a missing privilege, an unknown table, database or user, a
// wrong password (see ConfigError).
func (s *Source) Run(ctx context.Context) error {
	var start pgrepl.LSN
	delay := s.opts.minBackoff
	for {
		progressed, err := s.runOnce(ctx, &start)
		if ctx.Err() != nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ce := configError(err); ce != nil {
			s.opts.logger.Error("postgres cdc: configuration error; not retrying", "slot", s.opts.slot, "err", ce.Err, "sqlstate", ce.Code, "hint", ce.Hint)
			return ce
		}
		if progressed {
			delay = s.opts.minBackoff
		}
		s.opts.logger.Warn("postgres cdc: stream failed; reconnecting", "slot", s.opts.slot, "err", err, "delay", delay)
		s.stats.reconnects.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, s.opts.maxBackoff)
	}
}

var jsonContentType = "application/json"

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// DropSlot drops the replication slot name (waiting for it to become
// inactive), releasing the WAL it retains. Dropping a missing slot is not an
// error.
func DropSlot(ctx context.Context, dsn, name string) error {
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: cdc: %w", err)
	}
	defer c.Close(context.Background())
	_, err = c.ExecParams(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
		[][]byte{[]byte(name)}, nil, nil, nil).Close()
	if err != nil {
		return fmt.Errorf("postgres: cdc: drop slot %s: %w", name, err)
	}
	return nil
}

// DropPublication drops the publication name if it exists.
func DropPublication(ctx context.Context, dsn, name string) error {
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: cdc: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgrepl.QuoteIdent(name)).ReadAll(); err != nil {
		return fmt.Errorf("postgres: cdc: drop publication %s: %w", name, err)
	}
	return nil
}

func (s *Source) connectSQL(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.dsn)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("postgres: cdc: %w", err), Hint: "check the DSN"}
	}
	pgrepl.SetTextForms(cfg) // the same text forms as the replication connection's
	cfg.RuntimeParams["bytea_output"] = "hex"
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: cdc: connect: %w", err)
	}
	return c, nil
}

// runOnce connects, prepares, and streams until an error. start is the
// position confirmed so far (kept across reconnections).
func (s *Source) runOnce(ctx context.Context, start *pgrepl.LSN) (progressed bool, err error) {
	meta, err := s.connectSQL(ctx)
	if err != nil {
		return false, err
	}
	defer meta.Close(context.Background())
	pending, err := s.ensurePublication(ctx, meta)
	if err != nil {
		return false, err
	}
	rcfg, err := pgconn.ParseConfig(s.dsn)
	if err != nil {
		return false, &ConfigError{Err: fmt.Errorf("postgres: cdc: %w", err), Hint: "check the DSN"}
	}
	rc, err := pgrepl.ConnectConfig(ctx, rcfg, map[string]string{"bytea_output": "hex"})
	if err != nil {
		return false, fmt.Errorf("postgres: cdc: %w", err)
	}
	defer rc.Close(context.Background())
	sys, err := rc.IdentifySystem(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: cdc: %w", err)
	}
	st := newCDCStream(s, meta, sys.DBName)

	progressed, pending, err = s.ensureSlot(ctx, rc, st, meta, pending)
	if err != nil {
		return progressed, err
	}
	if len(pending) > 0 {
		snapped, err := s.snapshotPending(ctx, st, meta, pending)
		if progressed = progressed || snapped; err != nil {
			return progressed, err
		}
	}
	err = s.stream(ctx, rc, st, start)
	return progressed || st.progressed.Load(), err
}

// ensureSlot creates the replication slot if it does not exist, and then
// emits the initial snapshot (when snapshots are on) on the snapshot the
// slot exported, which covers the tables pending too: it returns the
// tables still waiting for their snapshot.
func (s *Source) ensureSlot(ctx context.Context, rc *pgrepl.Conn, st *replStream, meta *pgconn.PgConn, pending []string) (progressed bool, _ []string, _ error) {
	res, err := meta.ExecParams(ctx, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
		[][]byte{[]byte(s.opts.slot)}, nil, nil, nil).Close()
	if err != nil {
		return false, nil, fmt.Errorf("postgres: cdc: %w", err)
	}
	if res.RowsAffected() != 0 {
		return false, pending, nil
	}
	action := pgrepl.NoExportSnapshot
	if s.opts.snapshot {
		action = pgrepl.ExportSnapshot
	}
	slot, err := rc.CreateSlot(ctx, s.opts.slot, "pgoutput", pgrepl.SlotOptions{Snapshot: action})
	if err != nil {
		return false, nil, fmt.Errorf("postgres: cdc: create slot: %w", err)
	}
	s.opts.logger.Info("postgres cdc: created replication slot", "slot", slot.Name, "lsn", slot.ConsistentPoint)
	if s.opts.snapshot {
		if err := st.snapshot(ctx, slot); err != nil {
			// The slot would skip the rows the snapshot did not deliver:
			// drop it so that the next run takes the snapshot again.
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = rc.DropSlot(dctx, slot.Name, false)
			cancel()
			return false, nil, err
		}
		progressed = true
	}
	if len(pending) > 0 { // the snapshot of the new slot covers them
		if err := s.clearPending(ctx, meta); err != nil {
			return progressed, nil, err
		}
	}
	return progressed, nil, nil
}

// snapshotPending emits the rows of tables added to the publication of an
// existing slot. Their changes committed after the publication changed are
// in the stream; their rows as of now (which include every change
// committed before) are emitted first. A row changed in between comes twice
// (its snapshot row, then its change), which at least once allows; the
// final state is the same. It reports whether it emitted them.
func (s *Source) snapshotPending(ctx context.Context, st *replStream, meta *pgconn.PgConn, pending []string) (snapped bool, err error) {
	if s.opts.snapshot {
		if err := st.snapshotTables(ctx, "", 0, pending); err != nil {
			return false, err
		}
		snapped = true
	} else {
		s.opts.logger.Info("postgres cdc: tables added without a snapshot (snapshots are off)", "tables", strings.Join(pending, ","))
	}
	return snapped, s.clearPending(ctx, meta)
}

// stream starts replication at *start and streams until an error.
func (s *Source) stream(ctx context.Context, rc *pgrepl.Conn, st *replStream, start *pgrepl.LSN) error {
	// Logical decoding messages are asked for unless none is wanted.
	messages := s.opts.msgPrefixes == nil || len(s.opts.msgPrefixes) > 0
	args := pgrepl.PgoutputOptions{ProtoVersion: s.opts.protoVersion, Publications: []string{s.opts.publication}, Messages: messages}.Args()
	stream, err := rc.StartReplication(ctx, s.opts.slot, *start, args)
	if err != nil {
		// Transient as a rule: the slot may still be held by the
		// walsender of a previous, broken connection.
		return fmt.Errorf("postgres: cdc: %w", err)
	}
	defer stream.Close()
	st.stream = stream
	s.opts.logger.Debug("postgres cdc: streaming", "slot", s.opts.slot, "from", *start)
	err = st.run(ctx, start)
	s.opts.logger.Debug("postgres cdc: stream ended", "slot", s.opts.slot, "err", err)
	return err
}

// pendingPrefix starts the comment of a publication whose tables added
// by a reconciliation still need their snapshot.
const pendingPrefix = "eventkit cdc: snapshot pending: "

// qualifiedTables returns the tables of the options as "schema.table".
func (s *Source) qualifiedTables() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range s.opts.tables {
		if !strings.Contains(t, ".") {
			t = "public." + t
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func quoteTable(t string) string {
	schema, table, _ := strings.Cut(t, ".")
	return pgrepl.QuoteIdent(schema) + "." + pgrepl.QuoteIdent(table)
}

// ensurePublication creates the publication, or reconciles an existing one
// with the tables of the options (when some are given): tables missing
// from it are added, tables not given are dropped, in one transaction that
// also records the added tables as waiting for their snapshot (in the
// publication's comment, so that a failure or a crash before the snapshot
// is done does not lose it). It returns the tables waiting for a snapshot.
func (s *Source) ensurePublication(ctx context.Context, c *pgconn.PgConn) (pending []string, err error) {
	rr := c.ExecParams(ctx, "SELECT puballtables, coalesce(obj_description(oid, 'pg_publication'), '') FROM pg_publication WHERE pubname = $1",
		[][]byte{[]byte(s.opts.publication)}, nil, nil, nil)
	exists, allTables, comment := false, false, ""
	for rr.NextRow() {
		v := rr.Values()
		exists, allTables, comment = true, string(v[0]) == "t", string(v[1])
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("postgres: cdc: %w", err)
	}
	if p, ok := strings.CutPrefix(comment, pendingPrefix); ok && p != "" {
		pending = strings.Split(p, ",")
	}
	want := s.qualifiedTables()
	switch {
	case !exists:
		return s.createPublication(ctx, c, want)
	case len(want) == 0:
		return pending, nil // used as it is
	case allTables:
		s.opts.logger.Warn("postgres cdc: publication is FOR ALL TABLES: the tables given are ignored", "publication", s.opts.publication)
		return pending, nil
	}
	return s.reconcilePublication(ctx, c, want, pending)
}

// createPublication creates the publication for the tables want.
func (s *Source) createPublication(ctx context.Context, c *pgconn.PgConn, want []string) (pending []string, err error) {
	if len(want) == 0 {
		return nil, &ConfigError{Err: fmt.Errorf("postgres: cdc: publication %s does not exist and no tables are given", s.opts.publication), Hint: "give the tables to capture"}
	}
	_, err = c.Exec(ctx, "CREATE PUBLICATION "+pgrepl.QuoteIdent(s.opts.publication)+" FOR TABLE "+quoteTables(want)).ReadAll()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" {
		return s.ensurePublication(ctx, c) // created concurrently
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: cdc: create publication: %w", err)
	}
	s.opts.logger.Info("postgres cdc: created publication", "publication", s.opts.publication, "tables", strings.Join(want, ","))
	return nil, nil
}

// reconcilePublication sets the tables of the existing publication to want
// and records the tables waiting for their snapshot (pending, those not
// dropped, then the added ones), which it returns.
func (s *Source) reconcilePublication(ctx context.Context, c *pgconn.PgConn, want, pending []string) ([]string, error) {
	rr := c.ExecParams(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
		[][]byte{[]byte(s.opts.publication)}, nil, nil, nil)
	have := map[string]bool{}
	for rr.NextRow() {
		have[string(rr.Values()[0])] = true
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("postgres: cdc: %w", err)
	}
	wanted := map[string]bool{}
	var added, dropped []string
	for _, t := range want {
		wanted[t] = true
		if !have[t] {
			added = append(added, t)
		}
	}
	for t := range have {
		if !wanted[t] {
			dropped = append(dropped, t)
		}
	}
	if len(added) == 0 && len(dropped) == 0 {
		return pending, nil
	}
	sort.Strings(dropped)
	// Still pending: those not dropped, then the added ones.
	var next []string
	for _, t := range pending {
		if wanted[t] && !slices.Contains(added, t) {
			next = append(next, t)
		}
	}
	next = append(next, added...)
	pub := pgrepl.QuoteIdent(s.opts.publication)
	note := "NULL"
	if len(next) > 0 {
		note = pgrepl.QuoteLiteral(pendingPrefix + strings.Join(next, ","))
	}
	if _, err := c.Exec(ctx, "BEGIN; ALTER PUBLICATION "+pub+" SET TABLE "+quoteTables(want)+
		"; COMMENT ON PUBLICATION "+pub+" IS "+note+"; COMMIT").ReadAll(); err != nil {
		_, _ = c.Exec(context.Background(), "ROLLBACK").ReadAll()
		return nil, fmt.Errorf("postgres: cdc: alter publication %s: %w", s.opts.publication, err)
	}
	s.opts.logger.Info("postgres cdc: publication changed to the tables given", "publication", s.opts.publication,
		"added", strings.Join(added, ","), "dropped", strings.Join(dropped, ","))
	return next, nil
}

// quoteTables quotes the "schema.table" names, separated by commas.
func quoteTables(tables []string) string {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = quoteTable(t)
	}
	return strings.Join(quoted, ", ")
}

// clearPending records that the tables waiting for a snapshot have it.
func (s *Source) clearPending(ctx context.Context, c *pgconn.PgConn) error {
	if _, err := c.Exec(ctx, "COMMENT ON PUBLICATION "+pgrepl.QuoteIdent(s.opts.publication)+" IS NULL").ReadAll(); err != nil {
		return fmt.Errorf("postgres: cdc: comment on publication %s: %w", s.opts.publication, err)
	}
	return nil
}

// txUnit is what the decoder hands to the publisher: events of one
// topic, in order, and the highest position (commit end, keepalive) met
// among them, which is safe to confirm once they and everything before
// them are published.
type txUnit struct {
	topic  string
	events []event.Event
	pos    pgrepl.LSN // 0: none
	txs    int64      // commits in the unit
	ctime  time.Time  // commit time of its last commit
}

func (u *txUnit) empty() bool { return len(u.events) == 0 && u.pos == 0 && u.txs == 0 }

type replStream struct {
	src     *Source
	meta    *pgconn.PgConn
	stream  *pgrepl.Stream
	db      string
	rels    map[uint32]*relInfo
	lastRel *relInfo // the relation of the previous change
	lastOID uint32

	// transaction in progress (decoder goroutine)
	inTx     bool
	txID     uint32
	txEnd    pgrepl.LSN
	txCommit time.Time
	txSeq    int
	txTime   *types.Timestamp // the events' time: the commit time (ms), shared
	// lastCommit is the end of the last transaction received, for
	// source.sequence (0 before the first).
	lastCommit pgrepl.LSN
	// userArrays maps the OIDs of types created in the database to their
	// element type when they are arrays, else 0 (lookupTypes).
	userArrays map[uint32]uint32
	txIDHead   []byte // "<name>:<end LSN>:"

	// encoding (decoder goroutine)
	srcHead    []byte // the source block up to the value of ts_ms
	ebuf, kbuf []byte

	// hand-over to the publisher
	unit  txUnit             // being filled (decoder goroutine)
	units chan txUnit        // to the publisher
	free  chan []event.Event // event slices back from the publisher

	received  atomic.Uint64 // highest WAL position received
	confirmed atomic.Uint64 // highest position safe to confirm
	replyNow  chan struct{}

	progressed atomic.Bool
}

func newCDCStream(src *Source, meta *pgconn.PgConn, db string) *replStream {
	return &replStream{src: src, meta: meta, db: db, rels: map[uint32]*relInfo{},
		srcHead: appendSrcHead(nil, src.opts.name)}
}

func (st *replStream) run(ctx context.Context, start *pgrepl.LSN) error {
	st.confirmed.Store(uint64(*start))
	st.replyNow = make(chan struct{}, 1)
	// At most WithBuffer events wait in units for the publisher.
	n := max(1, st.src.opts.buffer/st.src.opts.batch)
	st.units = make(chan txUnit, n)
	st.free = make(chan []event.Event, n+2)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // publisher
		defer wg.Done()
		if err := st.publish(ctx, start); err != nil {
			cancel(err)
		}
	}()
	go func() { // status updates
		defer wg.Done()
		st.status(ctx)
	}()
	err := st.decode(ctx)
	close(st.units)
	if err != nil {
		cancel(err)
	}
	wg.Wait()
	// Report the final position (best effort).
	fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
	c := pgrepl.LSN(st.confirmed.Load())
	_ = st.stream.SendStatus(fctx, pgrepl.StandbyStatus{Write: c, Flush: c, Apply: c})
	fcancel()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func (st *replStream) status(ctx context.Context) {
	t := time.NewTicker(st.src.opts.heartbeat)
	defer t.Stop()
	for {
		ask := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ask = true // heartbeat: ask for a keepalive carrying the server's position
		case <-st.replyNow:
		}
		c := pgrepl.LSN(st.confirmed.Load())
		w := max(pgrepl.LSN(st.received.Load()), c)
		if err := st.stream.SendStatus(ctx, pgrepl.StandbyStatus{Write: w, Flush: c, Apply: c, ReplyRequested: ask}); err != nil {
			st.src.opts.logger.Debug("postgres cdc: status update failed", "err", err)
			return
		}
		st.src.stats.confirmed.Store(int64(c))
	}
}

// publish takes the units in order, merging those that are ready into
// calls of at most WithBatch events of one topic, and advances the
// confirmable position past each unit once it is published.
func (st *replStream) publish(ctx context.Context, start *pgrepl.LSN) error {
	max := st.src.opts.batch
	for {
		u, ok := <-st.units
		if !ok {
			return nil
		}
		closed := false
	merge:
		for len(u.events) < max {
			select {
			case next, ok := <-st.units:
				if !ok {
					closed = true
					break merge
				}
				if len(next.events) == 0 || len(u.events) == 0 ||
					next.topic == u.topic && len(u.events)+len(next.events) <= max {
					st.mergeUnit(&u, &next)
					continue
				}
				if err := st.publishUnit(ctx, &u, start); err != nil {
					return err
				}
				u = next
			default:
				// Nothing more is ready: publish what is gathered.
				break merge
			}
		}
		if err := st.publishUnit(ctx, &u, start); err != nil {
			return err
		}
		if closed {
			return nil
		}
	}
}

// mergeUnit appends next to u.
func (st *replStream) mergeUnit(u, next *txUnit) {
	if len(next.events) > 0 {
		if len(u.events) == 0 {
			st.recycle(u.events)
			u.events, u.topic = next.events, next.topic
		} else {
			u.events = append(u.events, next.events...)
			st.recycle(next.events)
		}
	}
	u.pos = max(u.pos, next.pos)
	if next.txs > 0 {
		u.txs += next.txs
		u.ctime = next.ctime
	}
}

func (st *replStream) publishUnit(ctx context.Context, u *txUnit, start *pgrepl.LSN) error {
	if len(u.events) > 0 {
		if err := st.src.pub.Publish(ctx, u.topic, u.events...); err != nil {
			return fmt.Errorf("postgres: cdc: publish: %w", err)
		}
		st.src.stats.events.Add(int64(len(u.events)))
		st.progressed.Store(true)
	}
	if uint64(u.pos) > st.confirmed.Load() {
		st.confirmed.Store(uint64(u.pos))
		*start = u.pos
	}
	if u.txs > 0 {
		st.src.stats.txs.Add(u.txs)
		st.src.stats.lastCommit.Store(u.ctime.UnixNano())
		st.src.stats.lagNanos.Store(int64(time.Since(u.ctime)))
	}
	st.recycle(u.events)
	u.events = nil
	return nil
}

// recycle gives an event slice back to the decoder (the Publisher has
// returned: it keeps events, not the slice).
func (st *replStream) recycle(evs []event.Event) {
	if cap(evs) == 0 {
		return
	}
	clear(evs)
	select {
	case st.free <- evs[:0]:
	default:
	}
}

// emit adds an event to the unit being filled, handing the unit over
// first when the event cannot join it.
func (st *replStream) emit(ctx context.Context, topic string, ev event.Event) error {
	u := &st.unit
	if len(u.events) > 0 && (u.topic != topic || len(u.events) >= st.src.opts.batch) {
		if err := st.flush(ctx); err != nil {
			return err
		}
	}
	if u.events == nil {
		select {
		case u.events = <-st.free:
		default:
			u.events = make([]event.Event, 0, st.src.opts.batch)
		}
	}
	u.topic = topic
	u.events = append(u.events, ev)
	return nil
}

// position records a position that is safe to confirm once the events
// before it are published, and hands the unit over.
func (st *replStream) position(ctx context.Context, pos pgrepl.LSN, commit bool, ctime time.Time) error {
	u := &st.unit
	u.pos = max(u.pos, pos)
	if commit {
		u.txs++
		u.ctime = ctime
	}
	return st.flush(ctx)
}

// flush hands the unit being filled over to the publisher.
func (st *replStream) flush(ctx context.Context) error {
	if st.unit.empty() {
		return nil
	}
	select {
	case st.units <- st.unit:
		st.unit = txUnit{}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// decode receives and decodes the stream, turning changes into events.
func (st *replStream) decode(ctx context.Context) error {
	// Messages and their data are valid until the next receive: each
	// change is encoded before it.
	dec := pgrepl.Decoder{Reuse: true}
	for {
		m, err := st.stream.RecvView(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("postgres: cdc: %w", err)
		}
		switch m := m.(type) {
		case *pgrepl.Keepalive:
			st.src.stats.serverLSN.Store(int64(m.ServerWAL))
			if !st.inTx {
				// Every transaction that commits before this position was
				// sent: the position is safe once they are published.
				st.received.Store(max(st.received.Load(), uint64(m.ServerWAL)))
				if err := st.position(ctx, m.ServerWAL, false, time.Time{}); err != nil {
					return err
				}
			}
			if m.ReplyRequested {
				select {
				case st.replyNow <- struct{}{}:
				default:
				}
			}
		case *pgrepl.XLogData:
			st.src.stats.serverLSN.Store(int64(m.ServerWAL))
			msg, err := dec.Decode(m.Data)
			if err != nil {
				return &permanentError{fmt.Errorf("postgres: cdc: %w", err)}
			}
			if err := st.handle(ctx, m.WALStart, msg); err != nil {
				return err
			}
		}
	}
}

// begin starts a transaction (or the snapshot, with xid 0).
func (st *replStream) begin(xid uint32, end pgrepl.LSN, commit time.Time, snapshot bool) {
	st.txID, st.txEnd, st.txCommit, st.txSeq = xid, end, commit, 0
	st.txTime = &types.Timestamp{Time: time.UnixMilli(commit.UnixMilli()).UTC()}
	st.setTxIDHead(snapshot, end)
}

func (st *replStream) handle(ctx context.Context, lsn pgrepl.LSN, msg any) error {
	switch m := msg.(type) {
	case *pgrepl.Begin:
		st.inTx = true
		st.begin(m.Xid, m.FinalLSN, m.CommitTime, false)
	case *pgrepl.Commit:
		st.inTx = false
		st.lastCommit = m.EndLSN
		st.received.Store(max(st.received.Load(), uint64(m.EndLSN)))
		return st.position(ctx, m.EndLSN, true, m.CommitTime)
	case *pgrepl.Relation:
		return st.relation(ctx, m)
	case *pgrepl.Insert:
		return st.change(ctx, cdc.OpCreate, lsn, m.RelationOID, 0, nil, m.New)
	case *pgrepl.Update:
		return st.change(ctx, cdc.OpUpdate, lsn, m.RelationOID, m.OldKind, m.Old, m.New)
	case *pgrepl.Delete:
		return st.change(ctx, cdc.OpDelete, lsn, m.RelationOID, m.OldKind, m.Old, nil)
	case *pgrepl.Truncate:
		for _, oid := range m.RelationOIDs {
			rel, ok := st.rels[oid]
			if !ok {
				return &permanentError{fmt.Errorf("postgres: cdc: truncate of unknown relation %d", oid)}
			}
			c := &cdc.Change{Op: cdc.OpTruncate, Source: st.source(lsn, rel.schema, rel.table)}
			setNow(c)
			topic, ev := st.changeEvent(c, rel.subject, rel.subject)
			if err := st.emit(ctx, topic, ev); err != nil {
				return err
			}
		}
	case *pgrepl.Message:
		if st.src.opts.msgPrefixes != nil && !st.src.opts.msgPrefixes[m.Prefix] {
			if !m.Transactional {
				return st.position(ctx, m.LSN, false, time.Time{})
			}
			return nil
		}
		// The content is copied: the Change may outlive the message.
		// Debezium's messages have ts_ms only.
		c := &cdc.Change{Op: cdc.OpMessage, Message: &cdc.Message{Prefix: m.Prefix, Content: append([]byte{}, m.Content...)},
			TsMs: time.Now().UnixMilli()}
		c.Source = st.source(m.LSN, "", "")
		if !m.Transactional {
			// Sent outside any transaction: no transaction id (the id is
			// then "<name>:<LSN>:m"); as Debezium, the message counts as
			// the last commit (source.sequence ["<LSN>","<LSN>"], and of
			// the next changes).
			st.lastCommit = m.LSN
			c.Source.Sequence = sequence(int64(m.LSN), int64(m.LSN))
			c.Source.TxID, c.Source.TsMs, c.Source.TsUs, c.Source.TsNs = 0, c.TsMs, c.TsMs*1000, c.TsMs*1e6
		}
		topic, ev := st.changeEvent(c, m.Prefix, m.Prefix)
		if err := st.emit(ctx, topic, ev); err != nil {
			return err
		}
		if !m.Transactional {
			// Safe to confirm once published.
			return st.position(ctx, m.LSN, false, time.Time{})
		}
	}
	// Origin, Type and the stream messages (never sent: streaming is off)
	// carry nothing to publish.
	return nil
}

func (st *replStream) source(lsn pgrepl.LSN, schema, table string) cdc.Source {
	us := st.txCommit.UnixMicro()
	return cdc.Source{
		Version: SourceVersion, Connector: "postgresql", Name: st.src.opts.name,
		TsMs: us / 1000, Snapshot: cdc.SnapshotFalse, DB: st.db,
		Sequence: sequence(int64(st.lastCommit), int64(lsn)), TsUs: us, TsNs: us * 1000,
		Schema: schema, Table: table, TxID: int64(st.txID), LSN: int64(lsn),
	}
}

// setNow sets the envelope's processing time (ts_ms, ts_us, ts_ns).
func setNow(c *cdc.Change) {
	ns := time.Now().UnixNano()
	c.TsMs, c.TsUs, c.TsNs = ns/1e6, ns/1000, ns
}

func (st *replStream) relation(ctx context.Context, m *pgrepl.Relation) error {
	// The partition key is the primary key; without one, the replica
	// identity key (unless it is FULL, which flags every column).
	pkNames, err := st.primaryKey(ctx, m.OID)
	if err != nil {
		return err
	}
	var pk []int
	for i, c := range m.Columns {
		if pkNames[c.Name] || (len(pkNames) == 0 && c.Key && m.ReplicaIdentity != 'f') {
			pk = append(pk, i)
		}
	}
	if err := st.lookupTypes(ctx, m.Columns); err != nil {
		return err
	}
	st.rels[m.OID] = st.newRelation(m.Namespace, m.Name, m.Columns, pk)
	st.lastRel = nil
	return nil
}

func (st *replStream) primaryKey(ctx context.Context, oid uint32) (map[string]bool, error) {
	rr := st.meta.ExecParams(ctx, `SELECT a.attname FROM pg_index i JOIN pg_attribute a
		ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1 AND i.indisprimary`,
		[][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, nil, nil, nil)
	names := map[string]bool{}
	for rr.NextRow() {
		names[string(rr.Values()[0])] = true
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("postgres: cdc: primary key of relation %d: %w", oid, err)
	}
	return names, nil
}

// change publishes one row change.
func (st *replStream) change(ctx context.Context, op cdc.Op, lsn pgrepl.LSN, oid uint32, oldKind byte, old, new pgrepl.Tuple) error {
	rel := st.lastRel
	if rel == nil || st.lastOID != oid {
		var ok bool
		if rel, ok = st.rels[oid]; !ok {
			return &permanentError{fmt.Errorf("postgres: cdc: change of unknown relation %d", oid)}
		}
		st.lastRel, st.lastOID = rel, oid
	}
	r := changeRow{op: op, rel: rel, snapshot: cdc.SnapshotFalse, srcUs: st.txCommit.UnixMicro(), txID: int64(st.txID),
		lsn: int64(lsn), lastCommit: int64(st.lastCommit), nowNs: time.Now().UnixNano(), oldKind: oldKind, old: old, new: new}
	if op == cdc.OpUpdate && keyChanged(rel, oldKind, old, new) {
		// As Debezium: a change of the primary key is a delete of the old
		// key, then a create of the new one.
		d := r
		d.op, d.new = cdc.OpDelete, nil
		topic, ev := st.rowEvent(&d)
		if err := st.emit(ctx, topic, ev); err != nil {
			return err
		}
		r.op, r.oldKind, r.old = cdc.OpCreate, 0, nil
	}
	topic, ev := st.rowEvent(&r)
	return st.emit(ctx, topic, ev)
}

// snapshot emits every row of the published tables as of the slot's
// consistent point (op "r"), in a REPEATABLE READ transaction on the
// snapshot the slot exported.
func (st *replStream) snapshot(ctx context.Context, slot pgrepl.Slot) error {
	if err := st.snapshotTables(ctx, slot.SnapshotName, slot.ConsistentPoint, nil); err != nil {
		return err
	}
	return nil
}
