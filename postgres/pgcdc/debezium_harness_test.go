package pgcdc

// The Debezium harness: the real Debezium PostgreSQL connector (its
// embedded engine, scripts/debezium) and eventkit's Source run on their
// own slots over the same tables, so that a test can apply changes once and
// compare both sides' events (debezium_parity_test.go).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/internal/testkit"
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

	countOnly bool         // records are counted, not kept
	count     atomic.Int64 // records read

	mu      sync.Mutex
	records []dbzRecord
	started bool
	ended   string // the engine's completion message, when it stopped
	notify  chan struct{}
}

// dbzRun are settings of the engine's process.
type dbzRun struct {
	jvmOpts   string // DEBEZIUM_JVM_OPTS ("": run.sh's default)
	countOnly bool   // count the records, do not keep them
}

// startDebezium runs Debezium's PostgreSQL connector (pgoutput, its own
// slot and publication "dbz_<name>", topic.prefix name) on tables until
// the end of the test; props add or override connector properties.
func startDebezium(t testing.TB, dsn, name string, tables []string, props map[string]string, run dbzRun) *debezium {
	t.Helper()
	script := debeziumRunScript(t)
	propsFile := debeziumProperties(t, dsn, name, tables, props)

	d := &debezium{stderr: &strings.Builder{}, notify: make(chan struct{}, 1), countOnly: run.countOnly}
	d.cmd = exec.Command("bash", script, propsFile)
	if run.jvmOpts != "" {
		d.cmd.Env = append(os.Environ(), "DEBEZIUM_JVM_OPTS="+run.jvmOpts)
	}
	d.cmd.Stderr = &lockedWriter{w: d.stderr}
	var stdout io.ReadCloser
	d.stdin, stdout = testkit.StartPiped(t, d.cmd)
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
		dropDebeziumSlot(t, dsn, name)
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
		if bytes.HasPrefix(line, []byte(`{"destination":`)) {
			d.count.Add(1)
			if d.countOnly {
				continue
			}
		}
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
func (d *debezium) waitFor(t testing.TB, what string, cond func([]dbzRecord) bool) []dbzRecord {
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
func (d *debezium) waitRecords(t testing.TB, n int) []dbzRecord {
	t.Helper()
	return d.waitFor(t, fmt.Sprintf("%d records", n), func(r []dbzRecord) bool { return len(r) >= n })
}

// waitSnapshot waits for the last record of the snapshot (snapshot
// "last"), which every test gets by giving its first table a row.
func (d *debezium) waitSnapshot(t testing.TB) []dbzRecord {
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
