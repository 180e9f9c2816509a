package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
)

func writePipeline(t *testing.T, def string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// `eventkit run` moves events from NATS through SQL and CEL stages to
// stdout, and drains and exits 0 when its context ends (SIGINT/SIGTERM in
// main).
func TestRunCommand(t *testing.T) {
	srv, err := natsserver.Run(natsserver.WithListen("127.0.0.1", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ctx := context.Background()
	tr, err := eknats.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	path := writePipeline(t, fmt.Sprintf(`
input:
  url: %s
  topic: orders.>
  group: run-test
  from_start: true
processors:
  - name: placed
    sql: {where: "type = 'order.placed'"}
  - name: big
    cel: {filter: "data.total > 100.0"}
  - name: summary
    cel: {map: "{'order': data.id, 'total': data.total}", type: order.big}
    workers: 2
outputs:
  - url: stdout
`, srv.ClientURL()))
	for i, total := range []int{50, 150, 300} {
		e := eventkittest.NewEvent(fmt.Sprint("o", i))
		e.SetType("order.placed")
		_ = e.SetData(event.ApplicationJSON, map[string]any{"id": fmt.Sprint("o", i), "total": total})
		if err := tr.Publish(ctx, "orders.eu", e); err != nil {
			t.Fatal(err)
		}
	}
	other := eventkittest.NewEvent("x")
	if err := tr.Publish(ctx, "orders.eu", other); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr eventkittest.SyncBuffer
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() { done <- run(runCtx, []string{"run", path}, &stdout, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(stdout.String(), "\n") < 2 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{`"type":"order.big"`, `{"order":"o1","total":150}`, `{"order":"o2","total":300}`} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout does not hold %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"o0"`) || strings.Count(out, "\n") != 2 {
		t.Errorf("stdout holds more than the two big orders:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "summary") {
		t.Errorf("no stage counts on stderr: %s", stderr.String())
	}
}

// An invalid definition exits 1 with errors naming the line and the field.
func TestRunCommandRefusesInvalidFile(t *testing.T) {
	path := writePipeline(t, `input: {url: memory://, topic: in}
processors:
  - name: f
    cel: {filter: "data.total >"}
  - name: g
    sql: {where: "subject = 'x'"}
    wrokers: 2
outputs:
  - {url: stdout}
`)
	var stdout, stderr eventkittest.SyncBuffer
	if code := run(context.Background(), []string{"run", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d; want 1", code)
	}
	for _, want := range []string{
		path + ":4: processors[0].cel.filter: cel:",
		path + `:7: processors[1].wrokers: unknown field (did you mean "workers"?)`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	if code := run(context.Background(), []string{"run"}, &stdout, &stderr); code != 2 {
		t.Fatalf("no file: exit %d; want 2", code)
	}
}
