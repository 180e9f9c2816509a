// Package cdc holds change data capture events independent of any database:
// Change, one row-level change (or a truncate, or a logical message) with
// its before and after images and its source position, and the
// Debezium-compatible JSON envelope that carries it (Encode and Decode).
//
// The envelope is the value of a Debezium change event, as Debezium's
// PostgreSQL connector writes it with the JSON converter:
//
//	{"before": {...} | null, "after": {...} | null,
//	 "source": {"version", "connector", "name", "ts_ms", "snapshot", "db",
//	            "schema", "table", "txId", "lsn", ...},
//	 "op": "c" | "u" | "d" | "r" | "t" | "m", "ts_ms": 1559033904863}
//
// Decode accepts it with or without the Kafka Connect "schema" part
// ({"schema": ..., "payload": ...}), so that consumers of an existing
// Debezium pipeline can use eventkit handlers. The source of changes from
// PostgreSQL is github.com/eventkit/eventkit/postgres/pgcdc.
package cdc

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/eventkit/eventkit/internal/jsonstr"
)

// Op is the operation of a change, as Debezium names it.
type Op string

// Operations.
const (
	OpCreate   Op = "c" // a row was inserted
	OpUpdate   Op = "u" // a row was updated
	OpDelete   Op = "d" // a row was deleted
	OpRead     Op = "r" // a row read by the initial snapshot
	OpTruncate Op = "t" // a table was truncated
	OpMessage  Op = "m" // a logical decoding message
)

// Valid reports whether o is one of the operations above.
func (o Op) Valid() bool {
	switch o {
	case OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate, OpMessage:
		return true
	}
	return false
}

// Debezium's names for the values of Source.Snapshot.
const (
	SnapshotFalse = "false" // a streamed change
	SnapshotTrue  = "true"  // a snapshot row
	SnapshotLast  = "last"  // the last row of the snapshot
	// SnapshotFirst marks the first row of the snapshot, and
	// SnapshotFirstInTable and SnapshotLastInTable the first and last rows
	// of each later table (Debezium's "first_in_data_collection" and
	// "last_in_data_collection").
	SnapshotFirst        = "first"
	SnapshotFirstInTable = "first_in_data_collection"
	SnapshotLastInTable  = "last_in_data_collection"
)

// UnavailableValue stands for a column value that the database did not send:
// an unchanged TOASTed value in an update (Debezium's
// unavailable.value.placeholder default).
const UnavailableValue = "__debezium_unavailable_value"

// Source is the "source" block: where and when a change happened.
type Source struct {
	Version   string `json:"version"`   // version of the connector
	Connector string `json:"connector"` // "postgresql"
	Name      string `json:"name"`      // logical name of the source (Debezium's topic.prefix)
	TsMs      int64  `json:"ts_ms"`     // commit time in the database, Unix milliseconds
	Snapshot  string `json:"snapshot"`  // SnapshotFalse, SnapshotTrue, SnapshotLast, …
	DB        string `json:"db"`
	Sequence  string `json:"sequence,omitempty"` // Debezium's ["lastCommittedLsn","lsn"], as a string
	TsUs      int64  `json:"ts_us,omitempty"`    // commit time, Unix microseconds (0: not written)
	TsNs      int64  `json:"ts_ns,omitempty"`    // commit time, Unix nanoseconds (0: not written)
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	TxID      int64  `json:"txId"` // transaction id; 0 when none
	LSN       int64  `json:"lsn"`  // WAL position of the change; 0 when none
	Xmin      *int64 `json:"xmin"`
	// Origin and OriginLSN are the replication origin of the change
	// (Debezium 3's origin and origin_lsn; empty and 0 when none, written
	// as null).
	Origin    string `json:"origin,omitempty"`
	OriginLSN int64  `json:"origin_lsn,omitempty"`
}

// Message is the "message" block of a logical decoding message (op "m").
type Message struct {
	Prefix  string `json:"prefix"`
	Content []byte `json:"content"` // base64 in JSON
}

// Transaction is Debezium's optional "transaction" block.
type Transaction struct {
	ID                  string `json:"id"`
	TotalOrder          int64  `json:"total_order"`
	DataCollectionOrder int64  `json:"data_collection_order"`
}

// Change is one change event: the payload of a Debezium envelope.
type Change struct {
	Op Op
	// Before is the row before the change (a JSON object), nil when there
	// is none: inserts, snapshot reads, and updates of tables whose replica
	// identity does not send the old row.
	Before json.RawMessage
	// After is the row after the change, nil for deletes.
	After       json.RawMessage
	Source      Source
	TsMs        int64 // when the connector processed the change, Unix milliseconds
	TsUs        int64 // the same instant in microseconds (0: not written)
	TsNs        int64 // the same instant in nanoseconds (0: not written)
	Message     *Message
	Transaction *Transaction
}

// Row decodes the After image (or Before for deletes) into v.
func (c *Change) Row(v any) error {
	img := c.After
	if isNull(img) {
		img = c.Before
	}
	if isNull(img) {
		return fmt.Errorf("cdc: %s change has no row", c.Op)
	}
	return json.Unmarshal(img, v)
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// ErrInvalid reports a document that is not a Debezium change event.
var ErrInvalid = errors.New("cdc: not a Debezium change event")

// Decode decodes a Debezium change event value, with or without its
// Kafka Connect schema part. Before and After keep their JSON as sent;
// Source.Snapshot accepts Debezium's strings and the booleans of older
// versions.
func Decode(data []byte) (Change, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return Change{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if p, ok := top["payload"]; ok {
		if _, hasOp := top["op"]; !hasOp {
			if err := json.Unmarshal(p, &top); err != nil {
				return Change{}, fmt.Errorf("%w: payload: %w", ErrInvalid, err)
			}
		}
	}
	var c Change
	if err := unmarshalField(top, "op", &c.Op); err != nil {
		return Change{}, err
	}
	if !c.Op.Valid() {
		return Change{}, fmt.Errorf("%w: op %q", ErrInvalid, c.Op)
	}
	if b := top["before"]; !isNull(b) {
		c.Before = append(json.RawMessage(nil), bytes.TrimSpace(b)...)
	}
	if a := top["after"]; !isNull(a) {
		c.After = append(json.RawMessage(nil), bytes.TrimSpace(a)...)
	}
	if s, ok := top["source"]; ok && !isNull(s) {
		if err := decodeSource(s, &c.Source); err != nil {
			return Change{}, err
		}
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"ts_ms", &c.TsMs}, {"ts_us", &c.TsUs}, {"ts_ns", &c.TsNs}} {
		if err := unmarshalField(top, f.name, f.v); err != nil {
			return Change{}, err
		}
	}
	if m, ok := top["message"]; ok && !isNull(m) {
		c.Message = new(Message)
		if err := json.Unmarshal(m, c.Message); err != nil {
			return Change{}, fmt.Errorf("%w: message: %w", ErrInvalid, err)
		}
	}
	if t, ok := top["transaction"]; ok && !isNull(t) {
		c.Transaction = new(Transaction)
		if err := json.Unmarshal(t, c.Transaction); err != nil {
			return Change{}, fmt.Errorf("%w: transaction: %w", ErrInvalid, err)
		}
	}
	switch c.Op {
	case OpCreate, OpRead, OpUpdate:
		if c.After == nil {
			return Change{}, fmt.Errorf("%w: op %q without after", ErrInvalid, c.Op)
		}
	case OpDelete:
		if c.Before == nil {
			return Change{}, fmt.Errorf("%w: op %q without before", ErrInvalid, c.Op)
		}
	case OpMessage:
		if c.Message == nil {
			return Change{}, fmt.Errorf("%w: op %q without message", ErrInvalid, c.Op)
		}
	}
	for _, img := range []json.RawMessage{c.Before, c.After} {
		if img != nil && img[0] != '{' {
			return Change{}, fmt.Errorf("%w: row image is not an object", ErrInvalid)
		}
	}
	return c, nil
}

func unmarshalField(m map[string]json.RawMessage, name string, v any) error {
	b, ok := m[name]
	if !ok || isNull(b) {
		if name == "op" {
			return fmt.Errorf("%w: no op", ErrInvalid)
		}
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	return nil
}

func decodeSource(b json.RawMessage, s *Source) error {
	type plain Source
	var aux struct {
		plain
		Snapshot json.RawMessage `json:"snapshot"`
		TxID     *int64          `json:"txId"`
		LSN      *int64          `json:"lsn"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("%w: source: %w", ErrInvalid, err)
	}
	*s = Source(aux.plain)
	if aux.TxID != nil {
		s.TxID = *aux.TxID
	}
	if aux.LSN != nil {
		s.LSN = *aux.LSN
	}
	switch snap := string(bytes.TrimSpace(aux.Snapshot)); snap {
	case "", "null", "false":
		s.Snapshot = SnapshotFalse
	case "true":
		s.Snapshot = SnapshotTrue
	default:
		if err := json.Unmarshal(aux.Snapshot, &s.Snapshot); err != nil {
			return fmt.Errorf("%w: source.snapshot: %w", ErrInvalid, err)
		}
	}
	return nil
}

// Encode returns the envelope of c (the payload, without a schema part),
// in the shape of Debezium 3's: "transaction" is null when c has none,
// ts_us and ts_ns (of the envelope and the source block) are written when
// not 0, and a message (op "m") has no "before" and "after". Before and
// After must be JSON objects or nil.
func Encode(c *Change) ([]byte, error) {
	return AppendEncode(nil, c)
}

// AppendEncode appends the envelope of c to dst.
func AppendEncode(dst []byte, c *Change) ([]byte, error) {
	if !c.Op.Valid() {
		return dst, fmt.Errorf("cdc: encode: invalid op %q", c.Op)
	}
	for _, img := range []json.RawMessage{c.Before, c.After} {
		if img != nil && (len(img) == 0 || img[0] != '{') {
			return dst, fmt.Errorf("cdc: encode: row image is not a JSON object")
		}
	}
	b := append(dst, '{')
	if c.Op != OpMessage {
		b = append(b, `"before":`...)
		b = appendRaw(b, c.Before)
		b = append(b, `,"after":`...)
		b = appendRaw(b, c.After)
		b = append(b, ',')
	}
	b = append(b, `"source":`...)
	b = appendSource(b, &c.Source)
	if c.Transaction == nil {
		b = append(b, `,"transaction":null`...)
	}
	b = append(b, `,"op":"`...)
	b = append(b, c.Op...)
	b = append(b, `","ts_ms":`...)
	b = strconv.AppendInt(b, c.TsMs, 10)
	b = AppendTimes(b, c.TsUs, c.TsNs)
	if c.Message != nil {
		b = append(b, `,"message":{"prefix":`...)
		b = AppendString(b, c.Message.Prefix)
		b = append(b, `,"content":"`...)
		b = base64.StdEncoding.AppendEncode(b, c.Message.Content)
		b = append(b, `"}`...)
	}
	if c.Transaction != nil {
		b = append(b, `,"transaction":{"id":`...)
		b = AppendString(b, c.Transaction.ID)
		b = append(b, `,"total_order":`...)
		b = strconv.AppendInt(b, c.Transaction.TotalOrder, 10)
		b = append(b, `,"data_collection_order":`...)
		b = strconv.AppendInt(b, c.Transaction.DataCollectionOrder, 10)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendRaw(b []byte, raw json.RawMessage) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

func appendSource(b []byte, s *Source) []byte {
	b = appendStringField(b, `{"version":`, s.Version)
	b = appendStringField(b, `,"connector":`, s.Connector)
	b = appendStringField(b, `,"name":`, s.Name)
	b = strconv.AppendInt(append(b, `,"ts_ms":`...), s.TsMs, 10)
	b = appendStringField(b, `,"snapshot":`, cmp.Or(s.Snapshot, SnapshotFalse))
	b = appendStringField(b, `,"db":`, s.DB)
	if s.Sequence != "" {
		b = appendStringField(b, `,"sequence":`, s.Sequence)
	}
	b = AppendTimes(b, s.TsUs, s.TsNs)
	b = appendStringField(b, `,"schema":`, s.Schema)
	b = appendStringField(b, `,"table":`, s.Table)
	b = appendOptInt(append(b, `,"txId":`...), s.TxID)
	b = appendOptInt(append(b, `,"lsn":`...), s.LSN)
	b = append(b, `,"xmin":`...)
	if s.Xmin == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *s.Xmin, 10)
	}
	b = append(b, `,"origin":`...)
	if s.Origin == "" {
		b = append(b, "null"...)
	} else {
		b = AppendString(b, s.Origin)
	}
	b = appendOptInt(append(b, `,"origin_lsn":`...), s.OriginLSN)
	return append(b, '}')
}

// appendStringField appends key (with its leading punctuation and colon)
// and the JSON string of v.
func appendStringField(b []byte, key, v string) []byte {
	return AppendString(append(b, key...), v)
}

// AppendTimes appends `,"ts_us":us,"ts_ns":ns`, each when not 0.
func AppendTimes(b []byte, us, ns int64) []byte {
	if us != 0 {
		b = append(b, `,"ts_us":`...)
		b = strconv.AppendInt(b, us, 10)
	}
	if ns != 0 {
		b = append(b, `,"ts_ns":`...)
		b = strconv.AppendInt(b, ns, 10)
	}
	return b
}

func appendOptInt(b []byte, v int64) []byte {
	if v == 0 {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, v, 10)
}

// AppendString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func AppendString(b []byte, s string) []byte { return jsonstr.Append(b, s) }
