package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Conn is a replication connection (replication=database): it runs
// replication commands and starts the replication stream. A Conn is not safe
// for concurrent use; after StartReplication it belongs to the Stream.
type Conn struct {
	pg *pgconn.PgConn
}

// Connect opens a replication connection to the database named by dsn (a
// PostgreSQL URL or key/value string). It adds replication=database and
// fixes the session settings that shape the text output of values (DateStyle
// ISO, TimeZone UTC, IntervalStyle iso_8601, extra_float_digits 3) so that
// decoded values are unambiguous. params are extra startup parameters
// (for example logical_decoding_work_mem).
func Connect(ctx context.Context, dsn string, params map[string]string) (*Conn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgrepl: parse dsn: %w", err)
	}
	return ConnectConfig(ctx, cfg, params)
}

// ConnectConfig is Connect with a parsed configuration, which it modifies.
func ConnectConfig(ctx context.Context, cfg *pgconn.Config, params map[string]string) (*Conn, error) {
	SetTextForms(cfg)
	cfg.RuntimeParams["replication"] = "database"
	maps.Copy(cfg.RuntimeParams, params)
	pg, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgrepl: connect: %w", err)
	}
	return &Conn{pg: pg}, nil
}

// SetTextForms sets, in cfg's startup parameters, the session settings
// that shape the text output of values (DateStyle ISO, TimeZone UTC,
// IntervalStyle iso_8601, extra_float_digits 3): a plain connection with
// them reads values in the same text forms as a replication connection
// decodes.
func SetTextForms(cfg *pgconn.Config) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["IntervalStyle"] = "iso_8601"
	cfg.RuntimeParams["extra_float_digits"] = "3"
}

// Close closes the connection.
func (c *Conn) Close(ctx context.Context) error { return c.pg.Close(ctx) }

// PgConn returns the underlying connection.
func (c *Conn) PgConn() *pgconn.PgConn { return c.pg }

// Exec runs a command in the simple query protocol and returns the rows of
// its last result, in text form.
func (c *Conn) Exec(ctx context.Context, sql string) (columns []string, rows [][]string, err error) {
	results, err := c.pg.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("pgrepl: %s: %w", firstWord(sql), err)
	}
	if len(results) == 0 {
		return nil, nil, nil
	}
	r := results[len(results)-1]
	for _, f := range r.FieldDescriptions {
		columns = append(columns, f.Name)
	}
	for _, row := range r.Rows {
		vals := make([]string, len(row))
		for i, v := range row {
			vals[i] = string(v)
		}
		rows = append(rows, vals)
	}
	return columns, rows, nil
}

func firstWord(sql string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	return w
}

// SystemInfo is the answer to IDENTIFY_SYSTEM.
type SystemInfo struct {
	SystemID string // unique system identifier of the cluster
	Timeline int32  // current timeline
	XLogPos  LSN    // current WAL flush location
	DBName   string // database connected to
}

// IdentifySystem runs IDENTIFY_SYSTEM.
func (c *Conn) IdentifySystem(ctx context.Context) (SystemInfo, error) {
	_, rows, err := c.Exec(ctx, "IDENTIFY_SYSTEM")
	if err != nil {
		return SystemInfo{}, err
	}
	if len(rows) != 1 || len(rows[0]) < 4 {
		return SystemInfo{}, fmt.Errorf("pgrepl: IDENTIFY_SYSTEM: unexpected result %v", rows)
	}
	r := rows[0]
	var info SystemInfo
	info.SystemID = r[0]
	if _, err := fmt.Sscan(r[1], &info.Timeline); err != nil {
		return SystemInfo{}, fmt.Errorf("pgrepl: IDENTIFY_SYSTEM: timeline %q: %w", r[1], err)
	}
	if info.XLogPos, err = ParseLSN(r[2]); err != nil {
		return SystemInfo{}, err
	}
	info.DBName = r[3]
	return info, nil
}

// SnapshotAction says what CREATE_REPLICATION_SLOT does with the snapshot
// at the slot's consistent point.
type SnapshotAction string

// Snapshot actions.
const (
	// ExportSnapshot exports the snapshot; it can be imported (SET
	// TRANSACTION SNAPSHOT) until the next command on the replication
	// connection or its end.
	ExportSnapshot SnapshotAction = "EXPORT_SNAPSHOT"
	// NoExportSnapshot only creates the slot.
	NoExportSnapshot SnapshotAction = "NOEXPORT_SNAPSHOT"
	// UseSnapshot uses the snapshot in the current transaction of the
	// replication connection.
	UseSnapshot SnapshotAction = "USE_SNAPSHOT"
)

// SlotOptions configure CreateSlot.
type SlotOptions struct {
	Temporary bool           // the slot ends with the connection
	Snapshot  SnapshotAction // "" means NoExportSnapshot
}

// Slot is the answer to CREATE_REPLICATION_SLOT.
type Slot struct {
	Name            string
	ConsistentPoint LSN    // the WAL position from which the slot streams
	SnapshotName    string // the exported snapshot, with ExportSnapshot
	OutputPlugin    string
}

// CreateSlot creates a logical replication slot that decodes with plugin
// (for example "pgoutput").
func (c *Conn) CreateSlot(ctx context.Context, name, plugin string, opts SlotOptions) (Slot, error) {
	snap := opts.Snapshot
	if snap == "" {
		snap = NoExportSnapshot
	}
	temp := ""
	if opts.Temporary {
		temp = " TEMPORARY"
	}
	sql := fmt.Sprintf("CREATE_REPLICATION_SLOT %s%s LOGICAL %s %s", QuoteIdent(name), temp, QuoteIdent(plugin), snap)
	_, rows, err := c.Exec(ctx, sql)
	if err != nil {
		return Slot{}, err
	}
	if len(rows) != 1 || len(rows[0]) < 4 {
		return Slot{}, fmt.Errorf("pgrepl: CREATE_REPLICATION_SLOT: unexpected result %v", rows)
	}
	r := rows[0]
	lsn, err := ParseLSN(r[1])
	if err != nil {
		return Slot{}, err
	}
	return Slot{Name: r[0], ConsistentPoint: lsn, SnapshotName: r[2], OutputPlugin: r[3]}, nil
}

// DropSlot drops the replication slot name. With wait, it waits for an
// active slot to become inactive instead of failing.
func (c *Conn) DropSlot(ctx context.Context, name string, wait bool) error {
	sql := "DROP_REPLICATION_SLOT " + QuoteIdent(name)
	if wait {
		sql += " WAIT"
	}
	_, _, err := c.Exec(ctx, sql)
	return err
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteLiteral quotes an SQL string literal.
func QuoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// PgoutputOptions are the options of the pgoutput plugin for START_REPLICATION.
type PgoutputOptions struct {
	// ProtoVersion is the logical replication protocol version: 1, or 2 for
	// streaming of in-progress transactions. 0 means 1.
	ProtoVersion int
	// Publications are the publications to decode (at least one).
	Publications []string
	// Messages asks for logical decoding messages (pg_logical_emit_message).
	Messages bool
	// Streaming asks for in-progress transactions to be streamed (needs
	// ProtoVersion 2).
	Streaming bool
	// Binary asks for values in binary form instead of text.
	Binary bool
}

// Args returns the plugin arguments of START_REPLICATION.
func (o PgoutputOptions) Args() []string {
	v := o.ProtoVersion
	if v == 0 {
		v = 1
	}
	quoted := make([]string, len(o.Publications))
	for i, p := range o.Publications {
		quoted[i] = QuoteIdent(p)
	}
	args := []string{
		fmt.Sprintf("proto_version '%d'", v),
		"publication_names " + QuoteLiteral(strings.Join(quoted, ",")),
	}
	if o.Messages {
		args = append(args, "messages 'true'")
	}
	if o.Streaming {
		args = append(args, "streaming 'true'")
	}
	if o.Binary {
		args = append(args, "binary 'true'")
	}
	return args
}

// ErrStreamEnded is returned by Stream.Recv when the server ended the
// replication stream (CopyDone).
var ErrStreamEnded = errors.New("pgrepl: replication stream ended by the server")
