package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/inspect"
)

// servedEvents runs "eventkit serve" and publishes six events to it
// (o-1..o-4 orders.created, p-1 and p-2 payments.done).
func servedEvents(t *testing.T) (base string, ctx context.Context) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	base, _, _ = startServe(t, ctx, "--listen", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"))
	var lines strings.Builder
	for _, id := range []string{"o-1", "o-2", "p-1", "o-3", "p-2", "o-4"} {
		typ := "orders.created"
		if id[0] == 'p' {
			typ = "payments.done"
		}
		lines.WriteString(`{"specversion":"1.0","id":"` + id + `","source":"/shop","type":"` + typ + `","subject":"s` + id[2:] + `"}` + "\n")
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runPub(ctx, []string{"--server", base, "-f", file}, io.Discard, io.Discard); err != nil {
		t.Fatalf("pub: %v", err)
	}
	return base, ctx
}

// readIDs runs "eventkit read" with args and returns the ids it printed
// (JSON lines).
func readIDs(t *testing.T, ctx context.Context, args ...string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := runRead(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("read %v: %v (%s)", args, err, errOut.String())
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var it inspect.Item
		if err := json.Unmarshal([]byte(line), &it); err != nil {
			t.Fatalf("read printed %q: %v", line, err)
		}
		if it.Position == "" || it.Stored.IsZero() {
			t.Fatalf("item without position or store time: %s", line)
		}
		ids = append(ids, it.Event.ID())
	}
	return ids
}

func TestReadAgainstServer(t *testing.T) {
	base, ctx := servedEvents(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "o-1 o-2 p-1 o-3 p-2 o-4"},
		{[]string{"orders.>"}, "o-1 o-2 o-3 o-4"},
		{[]string{"--where", "type=payments.done"}, "p-1 p-2"},
		{[]string{"--sql", "subject IN ('s2', 's3')", ">"}, "o-2 o-3 p-2"},
		{[]string{"--limit", "2", "orders.created"}, "o-1 o-2"},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, ""},
	} {
		got := strings.Join(readIDs(t, ctx, append([]string{"--server", base}, tc.args...)...), " ")
		if got != tc.want {
			t.Errorf("read %v: %q, want %q", tc.args, got, tc.want)
		}
	}
	var out bytes.Buffer
	if err := runRead(ctx, []string{"--server", base, "-o", "table", "payments.>"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "POSITION") || !strings.Contains(lines[1], "payments.done") || !strings.Contains(lines[2], "p-2") {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, bad := range [][]string{{"-o", "xml"}, {"--since", "yesterday"}, {"--where", "novalue"}, {"--sql", "type = ="}, {"a", "b"}} {
		if err := runRead(ctx, append([]string{"--server", base}, bad...), io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("read %v: %v, want a usage error", bad, err)
		}
	}
}

func TestReplayAgainstServer(t *testing.T) {
	base, ctx := servedEvents(t)
	var errOut bytes.Buffer
	if err := runReplay(ctx, []string{"--server", base, "--to-topic", "again", "--rate", "100", "orders.>"}, io.Discard, &errOut); err != nil {
		t.Fatalf("replay: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "done: 4 events") {
		t.Fatalf("replay printed %q", errOut.String())
	}
	if got := strings.Join(readIDs(t, ctx, "--server", base, "again"), " "); got != "o-1 o-2 o-3 o-4" {
		t.Fatalf("replayed: %q", got)
	}
	if err := runReplay(ctx, []string{"--server", base, "orders.>"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("replay without a target: %v, want a usage error", err)
	}
	if err := runReplay(ctx, []string{"--server", base, "--to-topic", "x", "--resume", "f.json"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("replay --resume without --broker: %v, want a usage error", err)
	}
}

// TestTailFrom: tail --from start prints the stored events, then the
// live ones.
func TestTailFrom(t *testing.T) {
	base, ctx := servedEvents(t)
	tctx, stop := context.WithCancel(ctx)
	var out eventkittest.SyncBuffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = runTail(tctx, []string{"--server", base, "--from", "start", "orders.>"}, &out, io.Discard)
	}()
	defer func() { stop(); wg.Wait() }()
	eventually(t, "the stored events tailed", func() bool { return strings.Count(out.String(), "type=orders.created") == 4 })
	if err := runPub(ctx, []string{"--server", base, "--type", "orders.created", "--id", "live-1"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the live event tailed", func() bool { return strings.Contains(out.String(), "id=live-1") })
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, id := range []string{"o-1", "o-2", "o-3", "o-4", "live-1"} {
		if !strings.Contains(lines[i], "id="+id+" ") {
			t.Fatalf("line %d: %q, want %s", i, lines[i], id)
		}
	}
	if err := runTail(ctx, []string{"--server", base, "--from", "someday"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("tail --from someday: %v, want a usage error", err)
	}
}
