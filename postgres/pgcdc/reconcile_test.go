package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/eventkittest"
)

// runCount runs a source until stop is called, which returns Run's error.
// The source logs to log and to stderr.
func runCount(t *testing.T, dsn string, pub *eventRecorder, log *eventkittest.SyncBuffer, opts ...Option) (src *Source, stop func() error) {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, log), nil))), WithMessagePrefixes(),
		WithHeartbeat(200 * time.Millisecond), WithReconnect(20*time.Millisecond, 50*time.Millisecond)}, opts...)
	src, err := New(dsn, pub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return src, stop
}

// rows returns the ids of the recorded rows of table, by op.
func rowsOf(rec *eventRecorder, table string) map[cdc.Op][]int {
	out := map[cdc.Op][]int{}
	for _, r := range rec.snapshot() {
		if r.change.Source.Table != table {
			continue
		}
		var row struct{ ID int }
		_ = r.change.Row(&row)
		out[r.change.Op] = append(out[r.change.Op], row.ID)
	}
	return out
}

func waitRows(t *testing.T, rec *eventRecorder, table string, op cdc.Op, want []int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := rowsOf(rec, table)[op]
		slices.Sort(got)
		if slices.Equal(slices.Compact(got), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: op %s rows %v, want %v", table, op, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *testEnv) publicationTables(t *testing.T) []string {
	t.Helper()
	rows, err := e.conn.Query(context.Background(), "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", "eventkit_"+e.name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestCDCReconcilesPublication: a second run with the same name and other
// tables changes the publication to them (it streamed nothing, silently,
// before: "initial snapshot done tables=0" on the first run's
// publication), snapshots the tables added (their rows as of the change,
// op "r"), streams their changes, and no longer streams a table dropped
// from the list. A snapshot that fails is taken again on the retry.
func TestCDCReconcilesPublication(t *testing.T) {
	noLeaks(t)
	env := newCDCEnv(t, "id int PRIMARY KEY")
	a, b := env.table, env.otherTable(t, "_b", "id int PRIMARY KEY")
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (1)", a))

	// First run: table a, with its snapshot.
	rec1, log1 := newCDCRecorder(), &eventkittest.SyncBuffer{}
	_, stop := runCount(t, env.dsn, rec1, log1, WithName(env.name), WithTables(a))
	env.waitSlot(t, "eventkit_"+env.name)
	waitRows(t, rec1, a, cdc.OpRead, []int{1})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// While it is stopped: rows in b (before b is published) and a.
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (10), (11)", b))
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (2)", a))

	// Second run: tables a and b. The sink refuses at first, so the
	// snapshot of b fails and must be taken again.
	rec2, log2 := newCDCRecorder(), &eventkittest.SyncBuffer{}
	rec2.fail = errors.New("sink down")
	src2, stop := runCount(t, env.dsn, rec2, log2, WithName(env.name), WithTables(a, b))
	deadline := time.Now().Add(30 * time.Second)
	for src2.Stats().Reconnects < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no retries while the sink is down; log: %s", log2.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec2.mu.Lock()
	rec2.fail = nil
	rec2.mu.Unlock()
	env.waitSlot(t, "eventkit_"+env.name)
	waitRows(t, rec2, b, cdc.OpRead, []int{10, 11})
	waitRows(t, rec2, a, cdc.OpCreate, []int{2})
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (12)", b))
	waitRows(t, rec2, b, cdc.OpCreate, []int{12})
	if got := env.publicationTables(t); !slices.Equal(got, slices.Sorted(slices.Values([]string{"public." + a, "public." + b}))) {
		t.Fatalf("publication has %v", got)
	}
	if l := log2.String(); !strings.Contains(l, "publication changed") || !strings.Contains(l, "added=public."+b) {
		t.Fatalf("the change of the publication is not logged: %s", l)
	}
	for _, r := range rec2.snapshot() {
		if r.change.Source.Table == b && r.change.Op == cdc.OpRead && !strings.HasPrefix(r.ev.ID(), env.name+":snapshot:") {
			t.Fatalf("snapshot row id %q", r.ev.ID())
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Third run: table b only; a is dropped from the publication.
	rec3, log3 := newCDCRecorder(), &eventkittest.SyncBuffer{}
	_, stop = runCount(t, env.dsn, rec3, log3, WithName(env.name), WithTables(b))
	// A change of a committed before the publication changed is streamed
	// (a was published then): insert only after the change. (waitSlot may
	// still see the previous run's walsender.)
	deadline = time.Now().Add(30 * time.Second)
	for !slices.Equal(env.publicationTables(t), []string{"public." + b}) {
		if time.Now().After(deadline) {
			t.Fatalf("publication has %v, want [public.%s]", env.publicationTables(t), b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	env.waitSlot(t, "eventkit_"+env.name)
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (3)", a))
	env.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (13)", b))
	waitRows(t, rec3, b, cdc.OpCreate, []int{13})
	if got := rowsOf(rec3, a); len(got) != 0 {
		t.Fatalf("rows of %s, dropped from the publication: %v", a, got)
	}
	if l := log3.String(); !strings.Contains(l, "dropped=public."+a) {
		t.Fatalf("the change of the publication is not logged: %s", l)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
