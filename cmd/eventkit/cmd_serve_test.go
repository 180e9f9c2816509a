package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// eventually fails t unless cond holds within a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventkittest.WaitFor(t, time.Minute, what, cond)
}

// TestServePubTail runs "eventkit serve" on the embedded default (in a
// temporary directory), then "eventkit tail" and "eventkit pub" against it.
func TestServePubTail(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	base, serveErr, served := startServe(t, ctx, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	if !strings.Contains(serveErr.String(), "data="+filepath.Join(dir, "data")) {
		t.Errorf("startup line does not say where data lives: %s", serveErr.String())
	}

	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	var lines, full eventkittest.SyncBuffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = runTail(tailCtx, []string{"--server", base, "orders.>"}, &lines, io.Discard)
	}()
	go func() {
		defer wg.Done()
		_ = runTail(tailCtx, []string{"orders.*", "--json", "--server", base}, &full, io.Discard)
	}()
	eventually(t, "two stream clients", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "eventkit_stream_clients 2")
	})

	var out, errOut bytes.Buffer
	if err := runPub(ctx, []string{"--server", base, "--type", "orders.created", "--source", "/shop", "--id", "o-1", "--data", `{"total": 12}`, "--ext", "tenant=acme"}, &out, &errOut); err != nil {
		t.Fatalf("pub: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), "published o-1") {
		t.Fatalf("pub printed %q", out.String())
	}
	file := filepath.Join(dir, "events.jsonl")
	body := `{"specversion":"1.0","id":"f-1","source":"/f","type":"orders.shipped"}
{"specversion":"1.0","id":"f-2","source":"/f","type":"payments.done"}
`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runPub(ctx, []string{"--server", base, "-f", file}, &out, &errOut); err != nil {
		t.Fatalf("pub -f: %v", err)
	}
	if !strings.Contains(out.String(), "published 2 events") {
		t.Fatalf("pub -f printed %q", out.String())
	}
	// An invalid event is refused by the CLI itself.
	if err := runPub(ctx, []string{"--server", base, "--type", "orders.created", "--ext", "Bad=1"}, io.Discard, io.Discard); err == nil {
		t.Errorf("pub accepted an invalid extension name")
	}

	eventually(t, "two tail lines", func() bool { return strings.Count(lines.String(), "\n") >= 2 })
	l := lines.String()
	if !strings.Contains(l, "orders.created type=orders.created id=o-1 source=/shop") || !strings.Contains(l, `data={"total":12}`) ||
		!strings.Contains(l, "orders.shipped type=orders.shipped id=f-1") || strings.Contains(l, "payments") {
		t.Fatalf("tail printed:\n%s", l)
	}
	eventually(t, "two JSON events", func() bool { return strings.Count(full.String(), "\n") >= 2 })
	first, _, _ := strings.Cut(full.String(), "\n")
	e, err := eventkit.UnmarshalEvent([]byte(first))
	if err != nil || e.ID() != "o-1" || e.Extensions()["tenant"] != "acme" {
		t.Fatalf("tail --json printed %q (%v)", first, err)
	}
	stopTail()
	wg.Wait()

	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(serveErr.String(), "eventkit hub stopped") {
		t.Errorf("no shutdown log line:\n%s", serveErr.String())
	}
}

// startServe runs "eventkit serve" with args until ctx ends, and returns
// its base URL once it logged its startup line, its log, and its result.
func startServe(t *testing.T, ctx context.Context, args ...string) (string, *eventkittest.SyncBuffer, <-chan error) {
	t.Helper()
	serveErr := &eventkittest.SyncBuffer{}
	served := make(chan error, 1)
	go func() { served <- runServe(ctx, args, io.Discard, serveErr) }()
	urlRE := regexp.MustCompile(`events="POST (http://[^ ]+)/events"`)
	var base string
	eventually(t, "the startup line", func() bool {
		m := urlRE.FindStringSubmatch(serveErr.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	return base, serveErr, served
}

func TestPubUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--type", "a", "-f", "x"}, {"extra"}} {
		if err := runPub(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("pub %v succeeded", args)
		}
	}
	evs, err := parseEvents([]byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"}]`))
	if err != nil || len(evs) != 1 {
		t.Fatalf("batch: %v %v", evs, err)
	}
	if _, err := parseEvents([]byte("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}\nnot json")); err == nil {
		t.Fatal("bad line accepted")
	}
}
