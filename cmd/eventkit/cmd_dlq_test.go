package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// cliHook is a webhook that answers 503 while failing is set, and records
// the redrivecount of each delivery by event id otherwise.
type cliHook struct {
	failing atomic.Bool
	mu      sync.Mutex
	got     map[string][]int
	url     string
}

type hookPublisher struct{ h *cliHook }

func (p hookPublisher) Publish(_ context.Context, _ string, events ...event.Event) error {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, e := range events {
		p.h.got[e.ID()] = append(p.h.got[e.ID()], deadletter.RedriveCount(&e))
	}
	return nil
}
func (hookPublisher) Close() error { return nil }

func newCLIHook(t *testing.T) *cliHook {
	h := &cliHook{got: map[string][]int{}}
	h.failing.Store(true)
	ok := cehttp.NewHandler(hookPublisher{h}, cehttp.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *cliHook) deliveries(id string) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got[id]...)
}

// startHub runs "eventkit serve" on the embedded store with the
// configuration config (YAML, may be "") until the test ends, and returns
// its URL.
func startHub(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}
	if config != "" {
		f := filepath.Join(dir, "eventkit.yaml")
		if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", f)
	}
	ctx, stop := context.WithCancel(context.Background())
	base, _, served := startServe(t, ctx, args...)
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return base
}

// postCE posts one structured event to base.
func postCE(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/events", "application/cloudevents+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /events: %d", resp.StatusCode)
	}
}

// cli runs an eventkit command and returns its output.
func cli(t *testing.T, run func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// TestDLQCommand: an event that fails its webhook MaxAttempts times is
// listed by "dlq list" (its control characters escaped); "dlq redrive"
// makes the now healthy webhook receive it once, with its id and a
// redrivecount of 1, and the DLQ is then empty; "dlq purge" empties it.
func TestDLQCommand(t *testing.T) {
	hook := newCLIHook(t)
	base := startHub(t, `
subscriptions:
  - name: hook
    topic: orders.>
    url: `+hook.url+`
    max_attempts: 2
    backoff: 10ms
    allow_private_targets: true
`)
	postCE(t, base, `{"specversion":"1.0","id":"e-1","source":"/t","type":"orders.created","subject":"o-\u202e1"}`)
	var out string
	eventually(t, "the dead letter listed", func() bool {
		out, _ = cli(t, runDLQ, "list", "--server", base)
		return strings.Contains(out, "id=e-1")
	})
	if !strings.Contains(out, "sub=hook topic=orders.created type=orders.created id=e-1 attempts=2") || strings.Count(out, "\n") != 1 {
		t.Fatalf("dlq list: %q", out)
	}
	pos := strings.Fields(out)[0]
	shown, err := cli(t, runDLQ, "show", "--server", base, pos)
	if err != nil || !strings.Contains(shown, `"dlqtopic": "orders.created"`) || strings.Contains(shown, "\u202e") || !strings.Contains(shown, `\u202e`) {
		t.Fatalf("dlq show: %q, %v", shown, err)
	}
	hook.failing.Store(false)
	out, err = cli(t, runDLQ, "redrive", "--server", base, pos)
	if err != nil || !strings.Contains(out, "re-drove "+pos+" to orders.created") {
		t.Fatalf("dlq redrive: %q, %v", out, err)
	}
	eventually(t, "the re-driven event at the webhook", func() bool { return len(hook.deliveries("e-1")) > 0 })
	if got := hook.deliveries("e-1"); len(got) != 1 || got[0] != 1 {
		t.Errorf("deliveries of e-1 (redrivecount each): %v, want [1]", got)
	}
	if out, err := cli(t, runDLQ, "list", "--server", base); err != nil || out != "" {
		t.Errorf("dlq list after the re-drive: %q, %v", out, err)
	}
	if _, err := cli(t, runDLQ, "redrive", "--server", base, pos); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("second re-drive: %v", err)
	}

	hook.failing.Store(true)
	postCE(t, base, `{"specversion":"1.0","id":"e-2","source":"/t","type":"orders.created"}`)
	eventually(t, "the second dead letter", func() bool {
		out, _ = cli(t, runDLQ, "list", "--server", base, "--json", "--subscription", "hook")
		return strings.Contains(out, `"id":"e-2"`)
	})
	out, err = cli(t, runDLQ, "purge", "--server", base, "--subscription", "hook")
	if err != nil || strings.TrimSpace(out) != "purged 1 dead letter(s) of hook" {
		t.Fatalf("dlq purge: %q, %v", out, err)
	}
	if out, _ := cli(t, runDLQ, "list", "--server", base); out != "" {
		t.Errorf("dlq list after the purge: %q", out)
	}
	for _, args := range [][]string{{}, {"nope"}, {"redrive", "--server", base}, {"show", "--server", base}, {"purge", "--server", base, "1", "--subscription", "x"}} {
		if _, err := cli(t, runDLQ, args...); err == nil {
			t.Errorf("dlq %v succeeded", args)
		}
	}
}

// TestProbeCommand: "eventkit probe" follows a correlation id through
// three topics in order and writes a Mermaid diagram and an HTML page that
// holds no URL.
func TestProbeCommand(t *testing.T) {
	base := startHub(t, "")
	for _, e := range []string{
		`{"specversion":"1.0","id":"1","source":"https://shop.example.com","type":"orders.created","correlationid":"c-9"}`,
		`{"specversion":"1.0","id":"x","source":"https://shop.example.com","type":"orders.created","correlationid":"c-8"}`,
		`{"specversion":"1.0","id":"2","source":"https://pay.example.com","type":"payments.taken","correlationid":"c-9"}`,
		`{"specversion":"1.0","id":"3","source":"https://ship.example.com","type":"shipping.started","correlationid":"c-9"}`,
	} {
		postCE(t, base, e)
	}
	dir := t.TempDir()
	mmd, page := filepath.Join(dir, "flow.mmd"), filepath.Join(dir, "flow.html")
	out, err := cli(t, runProbe, "--server", base, "--correlation-id", "c-9", "--mermaid", mmd, "--html", page)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], " orders.created ") || !strings.Contains(lines[1], " payments.taken ") || !strings.Contains(lines[2], " shipping.started ") {
		t.Fatalf("probe:\n%s", out)
	}
	m, err := os.ReadFile(mmd)
	if err != nil || !strings.HasPrefix(string(m), "sequenceDiagram\n") || strings.Count(string(m), "->>") != 3 {
		t.Errorf("mermaid file: %s, %v", m, err)
	}
	h, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(h), "shipping.started") || strings.Contains(string(h), "://") {
		t.Errorf("html file (%v):\n%s", err, h)
	}
	for _, args := range [][]string{{"--server", base}, {"--server", base, "--subject", "a", "--aggregate", "b"}, {"--no-server", "--subject", "a"}} {
		if _, err := cli(t, runProbe, args...); err == nil {
			t.Errorf("probe %v succeeded", args)
		}
	}
}

// pgSchema makes a new schema on the test server, dropped when the test
// ends, and returns the server's URL, the schema's name and a pool.
func pgSchema(t *testing.T, prefix string) (dsn, schema string, pool *pgxpool.Pool) {
	t.Helper()
	dsn = eventkittest.ServerAddr(t, "EVENTKIT_POSTGRES_URL", eventkittest.DefaultPostgresURL, eventkittest.DialProbe)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema = eventkittest.UniqueName(prefix)
	if _, err := pool.Exec(context.Background(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_POSTGRES_URL", dsn, err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	return dsn, schema, pool
}

// TestProbeCommandEventStore: with --store, probe reads a PostgreSQL event
// store: an aggregate's stream, or the global log for a correlation id.
func TestProbeCommandEventStore(t *testing.T) {
	dsn, schema, pool := pgSchema(t, "probecli_")
	ctx := context.Background()
	st, err := postgres.NewEventStore(pool, postgres.WithEventsTable(schema+".events"), postgres.WithPositionsTable(schema+".positions"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for i, stream := range []string{"order-1", "order-2", "order-1"} {
		e := event.New()
		e.SetID(string(rune('a' + i)))
		e.SetSource("/orders")
		e.SetType("order.changed")
		e.SetExtension("correlationid", "flow-"+stream)
		if _, err := st.Append(ctx, stream, es.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		flag, key, want string
	}{{"--aggregate", "order-1", "a c"}, {"--correlation-id", "flow-order-2", "b"}} {
		out, err := cli(t, runProbe, "--no-server", "--store", dsn, "--store-table", schema+".events", c.flag, c.key)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			for _, f := range strings.Fields(l) {
				if id, ok := strings.CutPrefix(f, "id="); ok {
					ids = append(ids, id)
				}
			}
			if !strings.Contains(l, " es:order-") {
				t.Errorf("line %q", l)
			}
		}
		if strings.Join(ids, " ") != c.want {
			t.Errorf("%s %s: %v, want %s\n%s", c.flag, c.key, ids, c.want, out)
		}
	}
}
