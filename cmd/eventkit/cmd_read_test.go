package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/inspect"
	eknats "github.com/eventkit/eventkit/nats"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
		// A broker read directly does not tell the store time.
		if it.Position == "" || (it.Stored.IsZero() && !slices.Contains(args, "--broker")) {
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

// TestReadReplayAgainstBroker: read and replay --broker on the NATS
// server of EVENTKIT_NATS_URL; a replay cut by its publisher's failure
// resumes from its checkpoint file with --resume and ends with every event
// replayed once (the failed batch at most twice).
func TestReadReplayAgainstBroker(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	ctx := context.Background()
	tr, err := eknats.Dial(ctx, url) // the streams the command makes too
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ns := strings.ReplaceAll(eventkittest.UniqueName("cli"), "-", "_")
	defer func() {
		if nc, err := natsgo.Connect(url); err == nil {
			if js, err := jetstream.New(nc); err == nil {
				_ = js.DeleteStream(ctx, "EVENTKIT_"+ns)
			}
			nc.Close()
		}
	}()
	var want []string
	for i := range 12 {
		e := eventkittest.NewEvent(fmt.Sprintf("e%02d", i))
		want = append(want, e.ID())
		if err := tr.Publish(ctx, ns+".orders", e); err != nil {
			t.Fatal(err)
		}
	}
	got := readIDs(t, ctx, "--broker", url, "--limit", "0", ns+".orders")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("read --broker: %v, want %v", got, want)
	}

	// The replay posts to a sink that fails the 6th request; 5 events a
	// batch at --rate 50.
	var mu sync.Mutex
	var posted []string
	requests := 0
	sink := httptest.NewServer(cehttp.NewHandler(funcPublisher(func(_ string, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		posted = append(posted, e.ID())
		return nil
	}), cehttp.WithLogger(slog.New(slog.DiscardHandler))))
	defer sink.Close()
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 6 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		sink.Config.Handler.ServeHTTP(w, r)
	})
	front := httptest.NewServer(failing)
	defer front.Close()
	file := filepath.Join(t.TempDir(), "cp.json")
	var errOut bytes.Buffer
	err = runReplay(ctx, []string{"--broker", url, "--to-url", front.URL, "--rate", "50", "--checkpoint", file, ns + ".orders"}, io.Discard, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "--resume "+file) {
		t.Fatalf("cut replay: %v; printed %q", err, errOut.String())
	}
	errOut.Reset()
	if err := runReplay(ctx, []string{"--broker", url, "--resume", file}, io.Discard, &errOut); err != nil {
		t.Fatalf("resumed replay: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "done: 12 events") {
		t.Fatalf("resumed replay printed %q", errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(slices.Compact(slices.Clone(posted)), want) || len(posted) > len(want)+5 {
		t.Fatalf("posted %v, want %v (a batch at most twice)", posted, want)
	}
}

// funcPublisher is a publisher that calls itself with each event.
type funcPublisher func(topic string, e event.Event) error

func (f funcPublisher) Publish(_ context.Context, topic string, events ...event.Event) error {
	for _, e := range events {
		if err := f(topic, e); err != nil {
			return err
		}
	}
	return nil
}

func (funcPublisher) Close() error { return nil }
