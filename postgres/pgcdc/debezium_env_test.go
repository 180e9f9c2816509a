package pgcdc

// The parity environment: tables captured by both Debezium (the harness of
// debezium_harness_test.go) and the source.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// debeziumRunScript returns the path of scripts/debezium/run.sh once it
// resolved Debezium's classpath. When the script reports that Java or Maven
// is missing (exit status 3), it skips t with the script's message, and
// fails t under CI=true.
func debeziumRunScript(t testing.TB) string {
	t.Helper()
	script, err := filepath.Abs("../../scripts/debezium/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", script, "classpath").CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3 && !eventkittest.InCI():
		t.Skipf("cannot run Debezium: %s", strings.TrimSpace(string(out)))
	case err != nil:
		t.Fatalf("scripts/debezium/run.sh classpath: %v\n%s", err, out)
	}
	return script
}

// debeziumProperties writes the connector's properties file in a
// temporary directory: pgoutput, its own slot and publication "dbz_<name>",
// topic.prefix name, the tables, the JsonConverter with schemas, a file
// offset store; props add or override properties.
func debeziumProperties(t testing.TB, dsn, name string, tables []string, props map[string]string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	include := make([]string, len(tables))
	for i, tb := range tables {
		include[i] = "public." + tb
	}
	p := map[string]string{
		"name":                         name,
		"connector.class":              "io.debezium.connector.postgresql.PostgresConnector",
		"offset.storage":               "org.apache.kafka.connect.storage.FileOffsetBackingStore",
		"offset.storage.file.filename": filepath.Join(dir, "offsets.dat"),
		"offset.flush.interval.ms":     "1000",
		"database.hostname":            cfg.Host,
		"database.port":                strconv.Itoa(int(cfg.Port)),
		"database.user":                cfg.User,
		"database.password":            cfg.Password,
		"database.dbname":              cfg.Database,
		"topic.prefix":                 name,
		"plugin.name":                  "pgoutput",
		"slot.name":                    "dbz_" + name,
		"publication.name":             "dbz_" + name,
		"publication.autocreate.mode":  "filtered",
		"table.include.list":           strings.Join(include, ","),
		// Kafka Connect's JSON form with schemas ({"schema":...,"payload":...}).
		"converter.schemas.enable": "true",
		// Logical decoding messages of the test's prefixes only.
		"message.prefix.include.list": name + ".*",
	}
	for k, v := range props {
		p[k] = v
	}
	var sb strings.Builder
	for k, v := range p {
		fmt.Fprintf(&sb, "%s=%s\n", k, strings.ReplaceAll(v, `\`, `\\`))
	}
	propsFile := filepath.Join(dir, "connector.properties")
	if err := os.WriteFile(propsFile, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	return propsFile
}

// dropDebeziumSlot drops Debezium's slot and publication.
func dropDebeziumSlot(t testing.TB, dsn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dropSlot(t, ctx, dsn, "dbz_"+name)
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Exec(ctx, "DROP PUBLICATION IF EXISTS dbz_"+name)
		conn.Close(ctx)
	}
}

// parityEnv is a set of tables captured by both Debezium and eventkit.
type parityEnv struct {
	*testEnv
	tables []string
	dbz    *debezium
	rec    *eventRecorder
	src    *Source
}

// newParityEnv creates the tables (name → columns; the first one gets
// seed, an INSERT's VALUES list, so that both snapshots end with a row),
// starts Debezium and eventkit on them (each with its own slot, both with
// their initial snapshot) and waits until both have taken it.
func newParityEnv(t *testing.T, ddl [][2]string, seed string, dbzProps map[string]string, opts ...Option) *parityEnv {
	t.Helper()
	noLeaks(t)
	dsn := pgtest.URL(t)
	debeziumRunScript(t) // skip before creating anything
	env := newCDCEnv(t, ddl[0][1])
	pe := &parityEnv{testEnv: env, tables: []string{env.table}}
	for _, d := range ddl[1:] {
		tb := env.name + "_" + d[0]
		env.exec(t, fmt.Sprintf("CREATE TABLE %s (%s)", tb, d[1]))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			env.conn.Exec(ctx, "DROP TABLE IF EXISTS "+tb+" CASCADE")
		})
		pe.tables = append(pe.tables, tb)
	}
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES %s", env.table, seed))
	pe.dbz = startDebezium(t, dsn, env.name, pe.tables, dbzProps, dbzRun{})
	pe.dbz.waitSnapshot(t)
	pe.rec = newCDCRecorder()
	// Messages of the test's prefixes only, as Debezium's
	// message.prefix.include.list.
	opts = append([]Option{WithSnapshot(true), WithTables(pe.tables...), WithMessagePrefixes(env.name + "_msg")}, opts...)
	pe.src = env.start(t, pe.rec, opts...)
	return pe
}

// table returns the name of the i-th table.
func (pe *parityEnv) table(i int) string { return pe.tables[i] }

// createEnum creates an enum type for the test (skipping it without a
// server) and drops it at the end.
func createEnum(t *testing.T, name string, labels ...string) {
	t.Helper()
	dsn := pgtest.URL(t)
	debeziumRunScript(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]string, len(labels))
	for i, l := range labels {
		q[i] = "'" + l + "'"
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", name, strings.Join(q, ", "))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn.Exec(ctx, "DROP TYPE IF EXISTS "+name+" CASCADE")
		conn.Close(ctx)
	})
}

// checkTombstones checks Debezium's tombstones: each follows a delete of
// the same key (value null, key the deleted row's). eventkit sends none
// (docs/cdc.md: a tombstone is a Kafka record without a value, and has no
// CloudEvents form).
func checkTombstones(t *testing.T, recs []dbzRecord) {
	t.Helper()
	n := 0
	for i, r := range recs {
		if payload(r.Value) != nil {
			continue
		}
		n++
		if i == 0 || opOf(payload(recs[i-1].Value)) != "d" || string(payload(recs[i-1].Key)) != string(payload(r.Key)) {
			t.Errorf("Debezium tombstone %d (key %s) does not follow a delete of its key", i, payload(r.Key))
		}
	}
	if n == 0 {
		t.Errorf("Debezium sent no tombstones")
	}
}
