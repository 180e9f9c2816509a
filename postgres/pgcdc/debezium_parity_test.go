package pgcdc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
)

// The TestDebeziumParity tests run Debezium's PostgreSQL connector
// (3.6.1.Final, embedded engine, default settings but for the JSON
// converter's schemas) and eventkit's Source on the same tables and the
// same changes, and compare the events field by field
// (debezium_compare_test.go). They need Java 17+ and Maven (skipped
// without them, failed under CI=true) and a PostgreSQL with
// wal_level=logical.

// parityColumn is a line of parityTypes.
type parityColumn struct{ col, typ, val string }

// parityTypeList reads testdata/debezium_types.txt: the columns of
// Debezium's default type-mapping table and a row of values for them.
func parityTypeList(t *testing.T) []parityColumn {
	b, err := os.ReadFile("testdata/debezium_types.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cols []parityColumn
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " | ", 3)
		if len(f) != 3 {
			t.Fatalf("testdata/debezium_types.txt: %q", line)
		}
		cols = append(cols, parityColumn{f[0], f[1], f[2]})
	}
	return cols
}

func parityColumns(t *testing.T, name string) (ddl, values, nulls string) {
	var d, v, n []string
	for _, c := range parityTypeList(t) {
		d = append(d, c.col+" "+strings.ReplaceAll(c.typ, "%[1]s", name))
		v = append(v, c.val)
		n = append(n, "NULL")
	}
	return "id int PRIMARY KEY, " + strings.Join(d, ", "), strings.Join(v, ", "), strings.Join(n, ", ")
}

// TestDebeziumParityTypes: every type of Debezium's default type mapping,
// in a snapshot row (op r), a streamed insert (c) and a row of NULLs.
func TestDebeziumParityTypes(t *testing.T) { typesParity(t, nil) }

// TestDebeziumParityModes: the same with Debezium's other modes of
// decimal.handling.mode, time.precision.mode, binary.handling.mode and
// interval.handling.mode, and the Source's options that select them.
func TestDebeziumParityModes(t *testing.T) {
	for _, m := range []struct {
		decimal, time, binary string
		opts                  []Option
	}{
		{"string", "connect", "hex", []Option{WithValueModes(ValueModes{DecimalString, TimeConnect, BinaryHex, IntervalString})}},
		{"double", "adaptive_time_microseconds", "base64-url-safe", []Option{
			WithValueModes(ValueModes{DecimalDouble, TimeAdaptiveMicroseconds, BinaryBase64URL, IntervalString})}},
	} {
		t.Run(m.decimal+","+m.time+","+m.binary, func(t *testing.T) {
			typesParity(t, map[string]string{"decimal.handling.mode": m.decimal, "time.precision.mode": m.time,
				"binary.handling.mode": m.binary, "interval.handling.mode": "string"}, m.opts...)
		})
	}
}

// typesParity compares the events of the types table under Debezium's
// properties dbzProps and the Source's opts.
func typesParity(t *testing.T, dbzProps map[string]string, opts ...Option) {
	name := eventkittest.UniqueName("dbzt")
	createEnum(t, name+"_mood", "sad", "happy")
	ddl, values, nulls := parityColumns(t, name)
	pe := newParityEnv(t, [][2]string{{"", ddl}}, "(1, "+values+")", dbzProps, opts...)
	pe.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (2, %s)", pe.table(0), values))
	pe.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (3, %s)", pe.table(0), nulls))
	recs := pe.dbz.waitRecords(t, 3)
	evs := pe.rec.wait(t, 3)
	compareStreams(t, recs, evs)
}

// TestDebeziumParityChanges: the envelope of every operation — snapshot
// rows of two tables, insert, update, key update, delete, an unchanged
// TOASTed value, REPLICA IDENTITY FULL, truncate and logical decoding
// messages in and outside a transaction — with Debezium's tombstones.
func TestDebeziumParityChanges(t *testing.T) {
	pe := newParityEnv(t, [][2]string{
		{"", "id int PRIMARY KEY, note text, big text"},
		{"b", "k1 int, k2 text, v int, PRIMARY KEY (k1, k2)"},
	}, "(1, 'a', 'small'), (2, 'b', NULL)", map[string]string{
		// Truncates are skipped by Debezium by default; compare them too.
		"skipped.operations": "none",
	})
	a, b := pe.table(0), pe.table(1)
	pe.exec(t, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN big SET STORAGE EXTERNAL", a))
	big := strings.Repeat("0123456789abcdef", 1024) // 16 kB, stored out of line
	for _, sql := range []string{
		fmt.Sprintf("INSERT INTO %s VALUES (3, 'c', '%s')", a, big),
		fmt.Sprintf("UPDATE %s SET note = 'd' WHERE id = 3", a), // big unchanged: not sent
		fmt.Sprintf("UPDATE %s SET id = 4 WHERE id = 3", a),     // key change
		fmt.Sprintf("DELETE FROM %s WHERE id = 4", a),
		fmt.Sprintf("INSERT INTO %s VALUES (1, 'x', 2), (1, 'y', 3)", b),
		fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", b),
		fmt.Sprintf("UPDATE %s SET v = v + 1", b),
		fmt.Sprintf("DELETE FROM %s WHERE k2 = 'x'", b),
		fmt.Sprintf("BEGIN; INSERT INTO %[1]s VALUES (5, 'e', NULL); SELECT pg_logical_emit_message(true, '%[2]s_msg', 'hello'); UPDATE %[1]s SET note = 'f' WHERE id = 5; COMMIT", a, pe.name),
		fmt.Sprintf("TRUNCATE %s", b),
		// A message outside any transaction, then a change (whose
		// sequence follows the message's).
		fmt.Sprintf("SELECT pg_logical_emit_message(false, '%s_msg', 'now')", pe.name),
		fmt.Sprintf("INSERT INTO %s VALUES (6, 'g', NULL)", a),
	} {
		pe.exec(t, sql)
	}
	// Debezium: 2 snapshot rows; insert, update, key update (delete,
	// tombstone, create), delete and tombstone; 2 inserts, 2 updates,
	// delete and tombstone; insert, message, update; truncate; message;
	// insert.
	recs := pe.dbz.waitRecords(t, 21)
	nonTombstones := 0
	for _, r := range recs {
		if payload(r.Value) != nil {
			nonTombstones++
		}
	}
	evs := pe.rec.wait(t, nonTombstones)
	compareStreams(t, recs, evs)
	checkTombstones(t, recs)
}

// TestDebeziumParityCloudEvents compares the source's CloudEvents with
// those of Debezium's CloudEvents converter for the same changes: the
// attributes both have are equal (source, type, specversion,
// datacontenttype, time: the commit time in milliseconds), Debezium's
// before and after (its data) are the envelope's, and its iodebezium*
// extensions carry the envelope's op and source block. The id and where
// the source block goes (extensions there, the data here) differ, as
// docs/cdc.md says.
func TestDebeziumParityCloudEvents(t *testing.T) {
	pe := newParityEnv(t, [][2]string{{"", "id int PRIMARY KEY, v text, d date"}}, "(1, 'a', '2024-02-29')",
		map[string]string{"eventkit.format": "cloudevents"})
	a := pe.table(0)
	pe.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (2, 'b', NULL)", a))
	pe.exec(t, fmt.Sprintf("UPDATE %s SET v = 'c' WHERE id = 2", a))
	pe.exec(t, fmt.Sprintf("DELETE FROM %s WHERE id = 1", a))
	recs := pe.dbz.waitRecords(t, 5) // snapshot row, c, u, d, tombstone
	evs := pe.rec.wait(t, 4)
	var values []dbzRecord
	for _, r := range recs {
		if len(r.Value) > 0 && string(r.Value) != "null" {
			values = append(values, r)
		}
	}
	if len(values) != len(evs) {
		t.Fatalf("Debezium sent %d CloudEvents, eventkit %d", len(values), len(evs))
	}
	var diffs []string
	for i, r := range values {
		ce, _ := decodeJSON(t, "Debezium CloudEvent", r.Value).(map[string]any)
		e := evs[i].ev
		env, _ := decodeJSON(t, "eventkit data", e.Data()).(map[string]any)
		src, _ := env["source"].(map[string]any)
		snapshot := env["op"] == "r"
		attrs := map[string]any{"source": e.Source(), "type": e.Type(), "specversion": e.SpecVersion(),
			"datacontenttype": e.DataContentType(), "time": e.Time().UTC().Format("2006-01-02T15:04:05.000Z")}
		for k, v := range attrs {
			if k == "time" && snapshot {
				continue // per snapshot (see TestDebeziumParityTypes)
			}
			if ce[k] != v {
				diffs = append(diffs, fmt.Sprintf("event %d: attribute %s: Debezium %s, eventkit %s", i, k, show(ce[k]), show(v)))
			}
		}
		// Debezium's data: {"schema":...,"payload":{"before":...,"after":...}}.
		data, _ := ce["data"].(map[string]any)
		p, _ := data["payload"].(map[string]any)
		for _, f := range []string{"before", "after"} {
			diffs = jsonDiff(diffs, fmt.Sprintf("event %d: %s", i, f), p[f], env[f])
		}
		// The extensions carry the source block, as strings.
		ext := map[string]any{"iodebeziumop": env["op"]}
		for k, v := range src {
			if k == "version" || k == "origin_lsn" || snapshot && slicesContains(perSnapshot, k) {
				continue
			}
			ext["iodebezium"+strings.ReplaceAll(k, "_", "")] = v
		}
		for k, v := range ext {
			got := ce[k]
			if v == nil && got == nil {
				continue
			}
			if s, ok := got.(string); !ok || s != fmt.Sprint(v) {
				diffs = append(diffs, fmt.Sprintf("event %d: %s: Debezium %s, eventkit's envelope %s", i, k, show(got), show(v)))
			}
		}
		t.Logf("event %d: Debezium id %v, eventkit id %s", i, ce["id"], e.ID())
	}
	if len(diffs) > 0 {
		t.Fatalf("%d differences from Debezium's CloudEvents:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}
