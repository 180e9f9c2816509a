package pgcdc

import (
	"fmt"
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

// parityTypes are the columns of Debezium's default type-mapping table,
// and a row of values for them (after the id) that reaches the corners of
// each mapping.
var parityTypes = []struct{ col, typ, val string }{
	{"b", "boolean", "true"},
	{"bit1", "bit(1)", "B'1'"},
	{"bit10", "bit(10)", "B'1000000001'"},
	{"bit8z", "bit(8)", "B'00000001'"},
	{"vbit", "bit varying", "B'1010101010101'"},
	{"vbitz", "bit varying(20)", "B'0001'"},
	{"i2", "smallint", "-32768"},
	{"i4", "integer", "2147483647"},
	{"i8", "bigint", "9223372036854775807"},
	{"oi", "oid", "4294967295"},
	{"f4", "real", "1.1"},
	{"f8", "double precision", "0.1"},
	{"f8i", "double precision", "2"},
	{"f8nan", "double precision", "'NaN'"},
	{"f4inf", "real", "'-Infinity'"},
	{"c5", "char(5)", "'ab'"},
	{"vc", "varchar(10)", `'h"é'`},
	{"txt", "text", `E'line\nbreak \\ "q"'`},
	{"tstz", "timestamptz", "'2024-02-29 13:14:15.123456+02'"},
	{"tstz0", "timestamptz(0)", "'2024-02-29 13:14:15+02'"},
	{"tstz3", "timestamptz(3)", "'2024-02-29 13:14:15.1+02'"},
	{"tstzz", "timestamptz", "'1969-12-31 23:59:59+00'"},
	{"tz", "timetz", "'13:14:15.123456-05:30'"},
	{"tz3", "timetz(3)", "'13:14:15.5+01'"},
	{"tzw", "timetz", "'23:30:00-02'"},
	{"iv", "interval", "'1 year 2 mons 3 days 04:05:06.5'"},
	{"ivn", "interval", "'-1 year -2 mons +3 days -04:05:06.000007'"},
	{"ivs", "interval second(3)", "'12.345678 seconds'"},
	{"d", "date", "'2024-02-29'"},
	{"dn", "date", "'1960-01-01'"},
	{"t", "time", "'13:14:15.123456'"},
	{"t0", "time(0)", "'13:14:15'"},
	{"t3", "time(3)", "'13:14:15.123'"},
	{"t24", "time", "'24:00:00'"},
	{"ts", "timestamp", "'2024-02-29 13:14:15.123456'"},
	{"ts0", "timestamp(0)", "'2024-02-29 13:14:15'"},
	{"ts3", "timestamp(3)", "'2024-02-29 13:14:15.124'"},
	{"tsn", "timestamp", "'1960-01-01 00:00:00.5'"},
	{"js", "json", `'[1, {"b": 2}]'`},
	{"jb", "jsonb", `'{"a": [1, 2.50, null]}'`},
	{"x", "xml", "'<a>1</a>'"},
	{"u", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
	{"pt", "point", "'(1.5,-2)'"},
	{"ir", "int4range", "'[1,5)'"},
	{"i8r", "int8range", "'[1,50)'"},
	{"nr", "numrange", "'(1.5,2.5]'"},
	{"tsr", "tsrange", "'[2024-01-01 00:00,2024-01-02 00:00)'"},
	{"tstzr", "tstzrange", "'[2024-01-01 00:00+00,2024-01-02 00:00+00)'"},
	{"dr", "daterange", "'[2024-01-01,2024-01-05)'"},
	{"en", "%[1]s_mood", "'happy'"},
	{"ip", "inet", "'192.168.0.1/24'"},
	{"cidr", "cidr", "'10.0.0.0/8'"},
	{"mac", "macaddr", "'08:00:2b:01:02:03'"},
	{"mac8", "macaddr8", "'08:00:2b:01:02:03:04:05'"},
	{"ba", "bytea", `'\xdeadbeef00'`},
	{"n", "numeric(10,2)", "-12.5"},
	{"n0", "numeric(5)", "42"},
	{"nv", "numeric", "'123456789012345678901234567890.123456789'"},
	{"nvi", "numeric", "'1.2345e3'"},
	{"dec", "decimal(20,5)", "'123456789012345.12345'"},
	{"m", "money", "-12.34"},
	{"mb", "money", "92233720368547758.07"},
	{"ai", "integer[]", "'{1,NULL,3}'"},
	{"a2", "integer[][]", "'{{1,2},{3,4}}'"},
	{"at", "text[]", `'{"a b","c\"d",NULL}'`},
	{"ab", "boolean[]", "'{t,f}'"},
	{"af", "double precision[]", "'{1.5,2}'"},
	{"ad", "date[]", "'{2024-02-29,NULL}'"},
	{"ats", "timestamp[]", `'{"2024-02-29 13:14:15"}'`},
	{"atstz", "timestamptz[]", `'{"2024-02-29 13:14:15+02"}'`},
	{"ajb", "jsonb[]", `ARRAY['{"x":1}'::jsonb]`},
	{"au", "uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"},
	{"aba", "bytea[]", `'{"\\x0102"}'`},
	{"aen", "%[1]s_mood[]", "'{sad,happy}'"},
	{"avc", "varchar(5)[]", "'{ab,cd}'"},
	{"tsv", "tsvector", "'a fat cat'"},
	{"ch", `"char"`, "'x'"},
}

func parityColumns(name string) (ddl, values, nulls string) {
	var d, v, n []string
	for _, c := range parityTypes {
		d = append(d, c.col+" "+strings.ReplaceAll(c.typ, "%[1]s", name))
		v = append(v, c.val)
		n = append(n, "NULL")
	}
	return "id int PRIMARY KEY, " + strings.Join(d, ", "), strings.Join(v, ", "), strings.Join(n, ", ")
}

// TestDebeziumParityTypes: every type of Debezium's default type mapping,
// in a snapshot row (op r), a streamed insert (c) and a row of NULLs.
func TestDebeziumParityTypes(t *testing.T) {
	name := eventkittest.UniqueName("dbzt")
	createEnum(t, name+"_mood", "sad", "happy")
	ddl, values, nulls := parityColumns(name)
	pe := newParityEnv(t, [][2]string{{"", ddl}}, "(1, "+values+")", nil)
	pe.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (2, %s)", pe.table(0), values))
	pe.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (3, %s)", pe.table(0), nulls))
	recs := pe.dbz.waitRecords(t, 3)
	evs := pe.rec.wait(t, 3)
	compareStreams(t, recs, evs)
}

// TestDebeziumParityChanges: the envelope of every operation — snapshot
// rows of two tables, insert, update, key update, delete, an unchanged
// TOASTed value, REPLICA IDENTITY FULL, truncate and a logical decoding
// message — with Debezium's tombstones.
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
	} {
		pe.exec(t, sql)
	}
	// Debezium: 2 snapshot rows; insert, update, key update (delete,
	// tombstone, create), delete and tombstone; 2 inserts, 2 updates,
	// delete and tombstone; insert, message, update; truncate.
	recs := pe.dbz.waitRecords(t, 19)
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
