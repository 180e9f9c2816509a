package pgcdc

// The Debezium harness: the real Debezium PostgreSQL connector (its
// embedded engine, scripts/debezium) and eventkit's Source run on their
// own slots over the same tables, so that a test can apply changes once and
// compare both sides' events (debezium_parity_test.go).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dbzRecord is one line of scripts/debezium/Runner.java: a record of
// Debezium's engine, its key and value as Kafka Connect's JsonConverter
// writes them (value null for a tombstone).
type dbzRecord struct {
	Destination string                     `json:"destination"`
	Key         json.RawMessage            `json:"key"`
	Value       json.RawMessage            `json:"value"`
	Headers     map[string]json.RawMessage `json:"headers"`
}

// payload returns the payload of a JsonConverter document with schemas
// ({"schema":...,"payload":...}), nil for null.
func payload(doc json.RawMessage) json.RawMessage {
	if len(doc) == 0 || string(doc) == "null" {
		return nil
	}
	var env struct {
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(doc, &env) != nil {
		return nil
	}
	return env.Payload
}

// debezium is a running Debezium engine.
type debezium struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *strings.Builder

	mu      sync.Mutex
	records []dbzRecord
	started bool
	ended   string // the engine's completion message, when it stopped
	notify  chan struct{}
}

// debeziumClasspath skips t, naming what is missing (Java, Maven), when
// Debezium cannot run here; it fails t under CI=true. It returns the path
// of scripts/debezium/run.sh once Maven resolved the classpath.
func debeziumRunScript(t *testing.T) string {
	t.Helper()
	var missing []string
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		why := "cannot run Debezium: missing " + strings.Join(missing, ", ") + " (Java 17+ and Maven)"
		if eventkittest.InCI() {
			t.Fatalf("%s (CI=true)", why)
		}
		t.Skip(why)
	}
	script, err := filepath.Abs("../../scripts/debezium/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", script, "classpath").CombinedOutput(); err != nil {
		t.Fatalf("scripts/debezium/run.sh classpath: %v\n%s", err, out)
	}
	return script
}

// startDebezium runs Debezium's PostgreSQL connector (pgoutput, its own
// slot and publication "dbz_<name>", topic.prefix name) on tables until
// the end of the test; props add or override connector properties.
func startDebezium(t *testing.T, dsn, name string, tables []string, props map[string]string) *debezium {
	t.Helper()
	script := debeziumRunScript(t)
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

	d := &debezium{stderr: &strings.Builder{}, notify: make(chan struct{}, 1)}
	d.cmd = exec.Command("bash", script, propsFile)
	d.cmd.Stderr = &lockedWriter{w: d.stderr}
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		d.read(stdout)
	}()
	t.Cleanup(func() {
		// Closing stdin stops the engine; it is killed if it does not.
		d.stdin.Close()
		exited := make(chan struct{})
		go func() {
			_ = d.cmd.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-exited
		}
		<-readDone
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dropSlot(t, ctx, dsn, "dbz_"+name)
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, "DROP PUBLICATION IF EXISTS dbz_"+name)
			conn.Close(ctx)
		}
		if t.Failed() {
			t.Logf("Debezium's stderr (end):\n%s", tail(d.log(), 4000))
		}
	})
	return d
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *debezium) log() string {
	lw := d.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (d *debezium) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ctl struct {
			Started   bool   `json:"started"`
			Completed *bool  `json:"completed"`
			Message   string `json:"message"`
			Error     string `json:"error"`
		}
		var rec dbzRecord
		if err := json.Unmarshal(line, &rec); err != nil || rec.Destination == "" {
			if json.Unmarshal(line, &ctl) != nil {
				continue
			}
		}
		d.mu.Lock()
		switch {
		case rec.Destination != "":
			d.records = append(d.records, rec)
		case ctl.Started:
			d.started = true
		case ctl.Completed != nil:
			d.ended = ctl.Message + " " + ctl.Error
		}
		d.mu.Unlock()
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
	d.mu.Lock()
	if d.ended == "" {
		d.ended = "the engine's output ended"
	}
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// waitFor returns the records once cond holds for them; it fails t if the
// engine stops or after three minutes (the JVM starts slowly on the
// shared machine).
func (d *debezium) waitFor(t *testing.T, what string, cond func([]dbzRecord) bool) []dbzRecord {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		d.mu.Lock()
		recs := append([]dbzRecord(nil), d.records...)
		ended := d.ended
		d.mu.Unlock()
		if cond(recs) {
			return recs
		}
		if ended != "" {
			t.Fatalf("Debezium stopped (%s) before %s; %d records; stderr:\n%s", ended, what, len(recs), tail(d.log(), 4000))
		}
		select {
		case <-d.notify:
		case <-deadline:
			t.Fatalf("Debezium: no %s after 3 minutes (%d records); stderr:\n%s", what, len(recs), tail(d.log(), 4000))
		}
	}
}

// waitRecords waits for at least n records.
func (d *debezium) waitRecords(t *testing.T, n int) []dbzRecord {
	t.Helper()
	return d.waitFor(t, fmt.Sprintf("%d records", n), func(r []dbzRecord) bool { return len(r) >= n })
}

// waitSnapshot waits for the last record of the snapshot (snapshot
// "last"), which every test gets by giving its first table a row.
func (d *debezium) waitSnapshot(t *testing.T) []dbzRecord {
	t.Helper()
	return d.waitFor(t, "end of the snapshot", func(recs []dbzRecord) bool {
		for _, r := range recs {
			var v struct {
				Source struct {
					Snapshot string `json:"snapshot"`
				} `json:"source"`
			}
			if json.Unmarshal(payload(r.Value), &v) == nil && v.Source.Snapshot == "last" {
				return true
			}
			var ce struct { // Debezium's CloudEvents converter
				Snapshot string `json:"iodebeziumsnapshot"`
			}
			if json.Unmarshal(r.Value, &ce) == nil && ce.Snapshot == "last" {
				return true
			}
		}
		return false
	})
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
	dsn := testDSN(t)
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
	pe.dbz = startDebezium(t, dsn, env.name, pe.tables, dbzProps)
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
	dsn := testDSN(t)
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
