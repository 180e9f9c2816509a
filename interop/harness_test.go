package interop

// The harness: eventkit serve in the process, eventkit transports on the
// shared servers, and the Python and Java programs of scripts/interop.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/kafka"
)

// wait bounds every wait of these tests for an event.
const wait = 30 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startHub runs "eventkit serve" in the process (embedded NATS in a
// temporary directory, HTTP on a free loopback port) with the webhook
// subscriptions subs, and stops it at the end of the test.
func startHub(t *testing.T, subs ...hub.SubscriptionConfig) *hub.Server {
	t.Helper()
	for i := range subs {
		subs[i].AllowPrivateTargets = true
		subs[i].FromStart = true
	}
	cfg := hub.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Subscriptions: subs}
	s, err := hub.New(cfg, hub.WithLogger(quiet))
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("hub: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("hub did not stop within %v", wait)
		}
	})
	testkit.Eventually(t, wait, "the hub's /healthz", func() bool {
		resp, err := http.Get(s.URL() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// subscribe subscribes to pattern on sub for the rest of the test.
func subscribe(t *testing.T, sub eventkit.Subscriber, pattern string, opts ...eventkit.SubscribeOption) eventkit.Subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := sub.Subscribe(ctx, pattern, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", pattern, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// receive takes n messages of s, acks them and returns their events,
// described.
func receive(t *testing.T, s eventkit.Subscription, n int) []described {
	t.Helper()
	out := make([]described, 0, n)
	for range n {
		m := eventkittest.Receive(t, s, wait)
		out = append(out, describe(m.Event))
		if err := m.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
	}
	return out
}

// collector gathers what a receiver (an HTTP handler, an SDK's
// callback) got, for a test to wait on.
type collector struct {
	mu   sync.Mutex
	got  []described
	errs []error
}

func (c *collector) add(d ...described) {
	c.mu.Lock()
	c.got = append(c.got, d...)
	c.mu.Unlock()
}

func (c *collector) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// wait returns the first n events once they came, and fails t if they do
// not come in time or if the receiver reported an error.
func (c *collector) wait(t *testing.T, n int, what string) []described {
	t.Helper()
	testkit.Eventually(t, wait, what, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.got) >= n || len(c.errs) > 0
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs {
		t.Errorf("%s: %v", what, err)
	}
	return append([]described(nil), c.got...)
}

// webhook is an HTTP server whose handler decodes each request with
// decode and collects the events.
func webhook(t *testing.T, decode func(r *http.Request) ([]described, error)) (*httptest.Server, *collector) {
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := decode(r)
		if err != nil {
			c.fail(err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(d...)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, c
}

// installWait bounds a script's setup: the first run installs the SDK
// (a virtualenv from PyPI, a classpath from Maven Central).
const installWait = 8 * time.Minute

// script returns the path of scripts/interop/name once its setup command
// (which installs what it needs) succeeded. When the script reports that a
// tool is missing (exit status 3), it skips t with the script's message,
// and fails t under CI=true.
func script(t *testing.T, name, setup string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "scripts", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", path, setup).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 3 && !eventkittest.InCI():
		t.Skipf("cannot run the SDK: %s", strings.TrimSpace(string(out)))
	case err != nil:
		t.Fatalf("%s %s: %v\n%s", name, setup, err, out)
	}
	return path
}

// child is a running script: its stdin, and its stdout's JSON lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []map[string]json.RawMessage
	done  chan struct{}
	err   error
	// stderr keeps what the script logged, for a failure's message.
	stderr eventkittest.SyncBuffer
}

// startWait bounds a program's start, until it prints {"ready": ...}:
// starting a JVM that compiles Interop.java, or Python importing the SDK,
// takes long on a busy machine, and the waits for events (wait) start
// after it.
const startWait = 3 * time.Minute

// startScript starts bash path args..., waits until it is ready, and stops
// it at the end of the test (closing its stdin, then killing it if it does
// not end).
func startScript(t *testing.T, path string, args ...string) *child {
	t.Helper()
	c := &child{done: make(chan struct{})}
	c.cmd = exec.Command("bash", append([]string{path}, args...)...)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]json.RawMessage{"text": json.RawMessage(mustJSON(sc.Text()))}
			}
			c.mu.Lock()
			c.lines = append(c.lines, m)
			c.mu.Unlock()
		}
		err := c.cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(wait):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	c.waitLine(t, "ready", "", startWait)
	return c
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	must(err)
	return b
}

// send writes v as one JSON line to the child's stdin.
func (c *child) send(t *testing.T, v any) {
	t.Helper()
	if _, err := c.stdin.Write(append(mustJSON(v), '\n')); err != nil {
		t.Fatalf("write to the SDK's program: %v (stderr: %s)", err, c.log())
	}
}

func (c *child) log() string { return c.stderr.String() }

// waitLine waits for a line with key (and, unless match is "", the JSON
// string match as its value), and returns its value; it fails t if the
// child ends first or nothing comes within d.
func (c *child) waitLine(t *testing.T, key, match string, d time.Duration) json.RawMessage {
	t.Helper()
	var v json.RawMessage
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if x, ok := l[key]; ok && (match == "" || string(x) == string(mustJSON(match))) {
				v = x
				break
			}
		}
		exited := c.err != nil || isClosed(c.done)
		c.mu.Unlock()
		if v != nil {
			return v
		}
		if exited {
			t.Fatalf("the SDK's program ended (%v) before printing %q; stderr:\n%s", c.err, key, c.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SDK's program printed no %q within %v; stderr:\n%s", key, d, c.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// received is an event that the SDK's program read, as it printed it.
type received struct {
	Via   string    `json:"via"`
	Mode  string    `json:"mode"`
	Event described `json:"event"`
	Error string    `json:"error"`
}

// waitEvents waits until the program printed n events read via via in
// mode, and returns them; it fails t on a line reporting an error.
func (c *child) waitEvents(t *testing.T, via, mode string, n int) []described {
	t.Helper()
	var got []described
	deadline := time.Now().Add(wait)
	for {
		got = got[:0]
		c.mu.Lock()
		for _, l := range c.lines {
			if _, ok := l["via"]; !ok {
				continue
			}
			var r received
			must(json.Unmarshal(mustJSON(l), &r))
			if r.Error != "" {
				c.mu.Unlock()
				t.Fatalf("the SDK refused an event (%s): %s", r.Via, r.Error)
			}
			if r.Via == via && r.Mode == mode {
				got = append(got, r.Event)
			}
		}
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SDK's program read %d of %d events via %s in %s mode within %v; stderr:\n%s", len(got), n, via, mode, wait, c.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finish closes the child's stdin and waits for it to end well.
func (c *child) finish(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(wait):
		t.Fatalf("the SDK's program did not end within %v; stderr:\n%s", wait, c.log())
	}
	if c.err != nil {
		t.Fatalf("the SDK's program: %v; stderr:\n%s", c.err, c.log())
	}
}

// readerCases runs the eventkit-to-SDK cases on a program that reads
// (c, which printed {"listening": URL}): serve's binary, structured and
// batch webhooks to its HTTP server, then eventkit's Kafka transport in
// both modes, consume asking the program to read n records of a topic.
// cmp gives the differences the SDK makes, by mode.
func readerCases(t *testing.T, c *child, sdk string, cmp func(mode string) comparison, consume func(brokers, topic string, n int)) {
	t.Helper()
	var url string
	must(json.Unmarshal(c.waitLine(t, "listening", "", wait), &url))
	var hooks []hub.SubscriptionConfig
	for _, mode := range []string{"binary", "structured", "batch"} {
		hooks = append(hooks, hub.SubscriptionConfig{Name: mode, Topic: "interop.>", URL: url, Mode: mode})
	}
	s := startHub(t, hooks...)
	want := testEvents("ek-webhook")
	publish(t, s.Publisher(), "interop.sdk", want...)
	for _, mode := range []string{"binary", "structured", "batch"} {
		checkEvents(t, "eventkit serve "+mode+" webhook → "+sdk, cmp(mode), want, c.waitEvents(t, "http", mode, len(want)))
	}
	brokers := kafkaBrokers(t)
	for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
		tr := kafkaTransport(t, brokers, mode)
		topic := kafkaTopic(t, tr, "interop-ek-")
		want := testEvents("ek-kafka-" + mode.String())
		publish(t, tr, topic, want...)
		consume(brokers, topic, len(want))
		checkEvents(t, "eventkit Kafka "+mode.String()+" → "+sdk, cmp(mode.String()), want, c.waitEvents(t, "kafka", mode.String(), len(want)))
	}
}

// kafkaBrokers returns the shared Apache Kafka (EVENTKIT_KAFKA_BROKERS,
// 127.0.0.1:9092 by default), or skips t (fails it under CI=true).
func kafkaBrokers(t *testing.T) string {
	t.Helper()
	return eventkittest.ServerAddr(t, "EVENTKIT_KAFKA_BROKERS", "127.0.0.1:9092", func(addr string) error {
		return eventkittest.DialProbe(strings.Split(addr, ",")[0])
	})
}

// kafkaTransport is an eventkit Kafka transport in mode on the real
// broker, creating its topics (one partition each).
func kafkaTransport(t *testing.T, brokers string, mode eventkit.Mode) *kafka.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tr, err := kafka.Dial(ctx, brokers, kafka.WithMode(mode), kafka.WithLogger(quiet),
		kafka.WithTopicCreation(1, -1, nil), kafka.WithHeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// kafkaTopic creates a topic of one partition on tr's broker, deleted at
// the end of the test, and returns its name.
func kafkaTopic(t *testing.T, tr *kafka.Transport, prefix string) string {
	t.Helper()
	name := eventkittest.UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.CreateTopic(ctx, name, 1, -1, nil); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := tr.Admin().DeleteTopics(ctx, name); err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
	return name
}
