// Package sqlstore holds what the SQL stores of package postgres (on pgx)
// and package sqlite (on database/sql) share, with the differences of
// their databases as parameters: how an event is stored in the columns of
// an events table and rebuilt from them, and the plumbing of their small
// tables (checkpoints, snapshots, dedup records) over a DB that each store
// package adapts from its driver. It imports no driver.
package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/es"
)

// EventColumns are the columns of an events table, in the order Decoder
// and the stores' queries use.
const EventColumns = `position, stream_id, version, event_id, source, type, subject, time, content_type, data_schema, extensions, data, recorded_at`

// EncodeEvent returns the stored columns of e: event_id, source, type
// (string), subject, time, content_type, data_schema, extensions (*string,
// nil when absent) and data ([]byte). The time is RFC 3339 text with its
// nanoseconds; the extensions a JSON object of their canonical strings.
func EncodeEvent(e *event.Event) ([]any, error) {
	var subject, ct, schema, ext, tm *string
	if v := e.Subject(); v != "" {
		subject = &v
	}
	if v := e.DataContentType(); v != "" {
		ct = &v
	}
	if v := e.DataSchema(); v != "" {
		schema = &v
	}
	if v := e.Time(); !v.IsZero() {
		f := v.UTC().Format(time.RFC3339Nano) // text keeps the nanoseconds a timestamp type may cut
		tm = &f
	}
	if exts := e.Extensions(); len(exts) > 0 {
		m := make(map[string]string, len(exts))
		for k, v := range exts {
			m[k] = binding.FormatValue(v)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode extensions of %s: %w", e.ID(), err)
		}
		v := string(b)
		ext = &v
	}
	return []any{e.ID(), e.Source(), e.Type(), subject, tm, ct, schema, ext, e.Data()}, nil
}

// Decoder rebuilds events from their stored columns. It remembers the last
// parsed source, which most rows of a page share; the zero value is ready
// to use, by one goroutine.
type Decoder struct {
	source string
	uri    types.URIRef
}

// Decode returns the event of the columns EncodeEvent made.
func (d *Decoder) Decode(id, source, typ string, subject, tm, ct, schema, ext *string, data []byte) (event.Event, error) {
	if source != d.source || d.source == "" {
		u, err := url.Parse(source)
		if err != nil {
			return event.Event{}, fmt.Errorf("source: %w", err)
		}
		d.source, d.uri = source, types.URIRef{URL: *u}
	}
	c := &event.EventContextV1{ID: id, Source: d.uri, Type: typ}
	if subject != nil {
		v := *subject
		c.Subject = &v
	}
	if ct != nil {
		v := *ct
		c.DataContentType = &v
	}
	if tm != nil {
		t, err := time.Parse(time.RFC3339Nano, *tm)
		if err != nil {
			return event.Event{}, fmt.Errorf("time: %w", err)
		}
		c.Time = &types.Timestamp{Time: t}
	}
	if schema != nil {
		u, err := url.Parse(*schema)
		if err != nil {
			return event.Event{}, fmt.Errorf("dataschema: %w", err)
		}
		c.DataSchema = &types.URI{URL: *u}
	}
	if ext != nil {
		var m map[string]string
		if err := json.Unmarshal([]byte(*ext), &m); err != nil {
			return event.Event{}, fmt.Errorf("extensions: %w", err)
		}
		for k, v := range m {
			if err := c.SetExtension(k, v); err != nil {
				return event.Event{}, fmt.Errorf("extension %s: %w", k, err)
			}
		}
	}
	return event.Event{Context: c, DataEncoded: data}, nil
}

// ReadEvents reads the rows of an event query (the columns EventColumns)
// until they end. The driver scans recorded_at into an R, which recordedAt
// converts.
func ReadEvents[R any](d *Dialect, rows Rows, recordedAt func(R) (time.Time, error)) ([]es.RecordedEvent, error) {
	var out []es.RecordedEvent
	var dec Decoder
	var (
		pos, ver                     int64
		stream, id, source, typ      string
		subject, tm, ct, schema, ext *string
		data                         []byte
		recorded                     R
	)
	for rows.Next() {
		if err := rows.Scan(&pos, &stream, &ver, &id, &source, &typ, &subject, &tm, &ct, &schema, &ext, &data, &recorded); err != nil {
			return nil, fmt.Errorf("%s: read events: %w", d.Name, err)
		}
		e, err := dec.Decode(id, source, typ, subject, tm, ct, schema, ext, data)
		if err != nil {
			return nil, fmt.Errorf("%s: event at position %d: %w", d.Name, pos, err)
		}
		at, err := recordedAt(recorded)
		if err != nil {
			return nil, fmt.Errorf("%s: event at position %d: recorded_at: %w", d.Name, pos, err)
		}
		out = append(out, es.RecordedEvent{Event: e, StreamID: stream, Version: uint64(ver), Position: uint64(pos), RecordedAt: at})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: read events: %w", d.Name, err)
	}
	return out, nil
}

// ValidateAppend checks the arguments of an append before anything is
// sent: es.ValidateAppend, and an expected version es defines.
func ValidateAppend(stream string, expected es.ExpectedVersion, events []event.Event) error {
	if err := es.ValidateAppend(stream, events); err != nil {
		return err
	}
	if expected < es.Any {
		return fmt.Errorf("es: invalid expected version %d", int64(expected))
	}
	return nil
}

// BeginCommit appends with BeginAppend and commits at once: Append for a
// store whose appends are its transactions.
func BeginCommit(ctx context.Context, s es.TxAppender, stream string, expected es.ExpectedVersion, events []event.Event) (es.AppendResult, error) {
	p, err := s.BeginAppend(ctx, stream, expected, events...)
	if err != nil {
		return es.AppendResult{}, err
	}
	return p.Commit(ctx)
}

// EventTable returns the statements that create an events table (quoted
// name table) and its unique indexes, named by index from their suffix, if
// they do not exist: the columns EventColumns in the dialect's types, a
// recorded_at that defaults to the dialect's Now where it has one.
func EventTable(d *Dialect, table string, index func(suffix string) string) []string {
	recorded := d.Time + " NOT NULL"
	if d.Now != "" {
		recorded += " DEFAULT " + d.Now
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + table + ` (
			position     ` + d.Int64 + ` PRIMARY KEY,
			stream_id    ` + d.Text + ` NOT NULL,
			version      ` + d.Int64 + ` NOT NULL,
			event_id     ` + d.Text + ` NOT NULL,
			source       ` + d.Text + ` NOT NULL,
			type         ` + d.Text + ` NOT NULL,
			subject      ` + d.Text + `,
			time         ` + d.Text + `,
			content_type ` + d.Text + `,
			data_schema  ` + d.Text + `,
			extensions   ` + d.Text + `,
			data         ` + d.Bytes + `,
			recorded_at  ` + recorded + `
		)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS ` + index("_stream_version") + ` ON ` + table + ` (stream_id, version)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS ` + index("_stream_event_id") + ` ON ` + table + ` (stream_id, event_id)`,
	}
}
