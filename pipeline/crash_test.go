package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/nats-io/nats.go"
)

// The crash test runs a pipeline (JetStream in → typed map with 4 workers
// → batches of 10 → a sink that appends each event's id to a file) in a
// child process, SIGKILLs it twice mid-stream, then lets a third child
// finish and stops it with SIGTERM. The JetStream server lives in the
// test process, so the input survives the kills. Every input event must be
// in the file at least once; the duplicates are counted and logged.
const (
	crashEnvURL  = "EVENTKIT_PIPELINE_CRASH_URL"
	crashEnvOut  = "EVENTKIT_PIPELINE_CRASH_OUT"
	crashEnvHang = "EVENTKIT_PIPELINE_CRASH_HANG" // the sink hangs before this write
	crashEvents  = 1000
)

func crashTransport(t *testing.T, url string) *eknats.Transport {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: "PIPE", Subjects: []string{"pipe.>"}}),
		eknats.WithAckWait(time.Second), eknats.WithSubscriptionBuffer(64))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestPipelineCrashChild(t *testing.T) {
	url := os.Getenv(crashEnvURL)
	if url == "" {
		t.Skip("helper process of TestPipelineSurvivesSIGKILL")
	}
	tr := crashTransport(t, url)
	f, err := os.OpenFile(os.Getenv(crashEnvOut), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hang := 0
	_, _ = fmt.Sscan(os.Getenv(crashEnvHang), &hang)
	var mu sync.Mutex
	written := 0
	p := pipeline.New(pipeline.WithMaxInFlight(128), pipeline.WithQueue(16))
	p.From(pipeline.Source{Subscriber: tr, Pattern: "pipe.in", Options: []eventkit.SubscribeOption{eventkit.WithGroup("crash"), eventkit.FromStart()}}).
		Then(pipeline.Typed("double", "dev.eventkit.test", "dev.eventkit.doubled", func(_ context.Context, o order) (order, error) {
			return order{ID: o.ID, Total: 2 * len(o.ID)}, nil
		}, pipeline.Workers(4))).
		Then(pipeline.Batch("batch", 10, 20*time.Millisecond, func(_ context.Context, evs []event.Event) ([]event.Event, error) {
			return evs, nil
		})).
		Then(pipeline.Sink("file", func(_ context.Context, e event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if written+1 == hang {
				fmt.Println("HANG")
				select {}
			}
			if _, err := f.WriteString(e.ID() + "\n"); err != nil {
				return err
			}
			written++
			if written%50 == 0 {
				fmt.Println("OUT", written)
			}
			return nil
		}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Println("STARTED")
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("DRAINED")
}

// TestPipelineSurvivesSIGKILL: at least once from a durable input across
// SIGKILLs, counted.
func TestPipelineSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	srv, err := natsserver.Run(natsserver.WithListen("127.0.0.1", 0), natsserver.WithStoreDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	tr := crashTransport(t, srv.ClientURL())
	for i := range crashEvents {
		if err := tr.Publish(context.Background(), "pipe.in", eventkittest.NewEvent(fmt.Sprintf("e%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	env := []string{crashEnvURL + "=" + srv.ClientURL(), crashEnvOut + "=" + out}

	// Killed while its sink hangs with a full pipeline behind it.
	c := eventkittest.StartChild(t, "^TestPipelineCrashChild$", append(env, crashEnvHang+"=300")...)
	c.WaitLine(t, "HANG", time.Minute)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	// Killed while running freely.
	c = eventkittest.StartChild(t, "^TestPipelineCrashChild$", env...)
	c.WaitLine(t, "OUT 150", time.Minute)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	// Finishes, and drains on SIGTERM.
	c = eventkittest.StartChild(t, "^TestPipelineCrashChild$", env...)
	c.WaitLine(t, "STARTED", time.Minute)
	// Poll with a deadline until every event is out (the check below
	// reports what is missing if the deadline passes first).
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if counts, _ := readCounts(t, out); len(counts) == crashEvents {
			break
		}
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.WaitLine(t, "DRAINED", time.Minute)
	if err := c.Wait(); err != nil {
		t.Fatalf("the last child: %v", err)
	}
	counts, lines := readCounts(t, out)
	var missing []string
	for i := range crashEvents {
		if id := fmt.Sprintf("e%04d", i); counts[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d events never reached the output: %v", len(missing), crashEvents, missing)
	}
	for id := range counts {
		if !strings.HasPrefix(id, "e") {
			t.Fatalf("unknown id %q in the output", id)
		}
	}
	t.Logf("SIGKILL count: %d events in, %d lines out, %d duplicates, 0 lost", crashEvents, lines, lines-len(counts))
}

func readCounts(t *testing.T, path string) (map[string]int, int) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts, lines := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() != "" {
			counts[sc.Text()]++
			lines++
		}
	}
	return counts, lines
}
