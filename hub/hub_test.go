package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cloudevents/sdk-go/v2/event"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// started runs a server until the test ends.
type started struct {
	*hub.Server
	stop func() error
}

// start runs a server on cfg, its subscriptions allowed to deliver to the
// tests' webhooks on loopback.
func start(t testing.TB, cfg hub.Config, opts ...hub.Option) *started {
	t.Helper()
	cfg.Subscriptions = slices.Clone(cfg.Subscriptions)
	for i := range cfg.Subscriptions {
		cfg.Subscriptions[i].AllowPrivateTargets = true
	}
	return startAsIs(t, cfg, opts...)
}

// startAsIs runs a server on cfg as it is.
func startAsIs(t testing.TB, cfg hub.Config, opts ...hub.Option) *started {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := hub.New(cfg, append([]hub.Option{hub.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	st := runUntilCleanup(t, s)
	waitHealthy(t, s.URL())
	return st
}

// runUntilCleanup runs s until the test ends, and checks its shutdown.
func runUntilCleanup(t testing.TB, s *hub.Server) *started {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err2 error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err2 = <-done:
			case <-time.After(60 * time.Second):
				err2 = errors.New("Run did not return 60s after its context ended")
			}
		})
		return err2
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &started{Server: s, stop: stop}
}

// storedFromStart subscribes to the events stored under pattern, from
// the oldest; ctx bounds the wait for them (30 s). Both end with the test.
func storedFromStart(t *testing.T, s *started, pattern string) (eventkit.Subscription, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sub, err := s.Subscriber().Subscribe(ctx, pattern, eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub, ctx
}

// waitHealthy fails t unless the server at base answers /healthz 200
// within 30 seconds.
func waitHealthy(t testing.TB, base string) {
	t.Helper()
	eventkittest.WaitFor(t, 30*time.Second, "server at "+base+" healthy", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func postEvent(t *testing.T, base, id, typ string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/events", strings.NewReader(`{"n":"`+id+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", id)
	req.Header.Set("ce-source", "/test")
	req.Header.Set("ce-type", typ)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /events: %v", err)
	}
	resp.Body.Close()
	return resp
}

// sse connects to the stream endpoint and returns the items it receives,
// once the subscription is in place.
func sse(t *testing.T, base, pattern string, hdr ...string) <-chan hub.StreamItem {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/stream?topic="+pattern, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /events/stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events/stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, ": subscribed") {
		t.Fatalf("first stream line %q: %v", l, err)
	}
	out := make(chan hub.StreamItem, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer resp.Body.Close()
		defer close(out)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if data, ok := strings.CutPrefix(l, "data: "); ok {
				var it hub.StreamItem
				if json.Unmarshal([]byte(data), &it) == nil {
					out <- it
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func TestServerOnMemoryBus(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{}, hub.WithBroker(bus, bus))
	items := sse(t, s.URL(), "orders.>")
	if resp := postEvent(t, s.URL(), "1", "orders.created"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	postEvent(t, s.URL(), "2", "payments.done")
	postEvent(t, s.URL(), "3", "orders.shipped")
	for _, want := range []string{"1", "3"} {
		select {
		case it := <-items:
			e, err := eventkit.UnmarshalEvent(it.Event)
			if err != nil || e.ID() != want || it.Topic != e.Type() {
				t.Fatalf("stream item %+v (%v), want event %s", it, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("stream: event %s not received", want)
		}
	}
	// Bad requests are answered as cehttp answers them.
	resp := postEvent(t, s.URL(), "", "orders.created")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("empty id: %d", resp.StatusCode)
	}
	m := metricsText(t, s.URL())
	for _, want := range []string{"eventkit_ingress_events_total 3", `eventkit_ingress_requests_total{code="204"} 3`, `eventkit_ingress_requests_total{code="400"} 1`, "eventkit_stream_clients 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, _ = http.Get(s.URL() + "/events/stream?topic=a..b")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad pattern: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestAuthAndLimitsFromConfig(t *testing.T) {
	cfg, err := hub.ParseConfig([]byte(`
auth:
  token: env:HUB_TEST_TOKEN
limits:
  max_event_bytes: 100
`))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HUB_TEST_TOKEN", "t0k")
	bus := memory.New()
	s := start(t, cfg, hub.WithBroker(bus, bus))
	if r := postEvent(t, s.URL(), "1", "a.b"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.StatusCode)
	}
	if r := postEvent(t, s.URL(), "1", "a.b", "Authorization", "Bearer nope"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong token: %d", r.StatusCode)
	}
	if r := postEvent(t, s.URL(), "1", "a.b", "Authorization", "Bearer t0k"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("token: %d", r.StatusCode)
	}
	if r := postEvent(t, s.URL(), strings.Repeat("x", 100), "a.b", "Authorization", "Bearer t0k"); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("large: %d", r.StatusCode)
	}
	resp, _ := http.Get(s.URL() + "/events/stream")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stream without token: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

// webhook is a test endpoint that fails the first failures requests.
type webhook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      map[string]int
	failures atomic.Int32
	attempts atomic.Int32 // requests answered with status
	status   int
}

func newWebhook(t *testing.T, failures int, status int) *webhook {
	w := &webhook{got: map[string]int{}, status: status}
	w.failures.Store(int32(failures))
	var h http.Handler = cehttp.NewHandler(recorderFunc(func(_ string, e event.Event) error {
		if w.failures.Add(-1) >= 0 {
			return errors.New("failing on purpose")
		}
		w.mu.Lock()
		w.got[e.ID()]++
		w.mu.Unlock()
		return nil
	}), cehttp.WithLogger(quiet))
	if status != 0 {
		h = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.attempts.Add(1)
			rw.WriteHeader(status)
		})
	}
	w.srv = httptest.NewServer(h)
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) count() (distinct, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.got {
		total += n
	}
	return len(w.got), total
}

// waitFor fails t unless cond holds within a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventkittest.WaitFor(t, time.Minute, what, cond)
}

func TestSubscriptionsRetryAndDeadLetter(t *testing.T) {
	ok := newWebhook(t, 2, 0)      // fails twice, then takes everything
	gone := newWebhook(t, 0, 410)  // always 410: permanent, dead-lettered at once
	flaky := newWebhook(t, 0, 503) // always 503: retried, then dead-lettered
	cfg := hub.Config{Subscriptions: []hub.SubscriptionConfig{
		{Name: "ok", Topic: "orders.>", URL: ok.srv.URL, Backoff: hub.Duration(10 * time.Millisecond)},
		{Name: "gone", Topic: "orders.>", URL: gone.srv.URL, Backoff: hub.Duration(10 * time.Millisecond)},
		{Name: "flaky", Topic: "orders.created", URL: flaky.srv.URL, MaxAttempts: 3, Backoff: hub.Duration(10 * time.Millisecond)},
	}}
	bus := memory.New()
	s := start(t, cfg, hub.WithBroker(bus, bus))
	dlq := sse(t, s.URL(), "deadletter.*")
	for i := 0; i < 5; i++ {
		if r := postEvent(t, s.URL(), fmt.Sprint(i), "orders.created"); r.StatusCode != http.StatusNoContent {
			t.Fatalf("POST: %d", r.StatusCode)
		}
	}
	waitFor(t, "5 deliveries to the ok webhook", func() bool { d, _ := ok.count(); return d == 5 })
	byTopic := map[string]int{}
	for len(byTopic) < 2 || byTopic["deadletter.gone"] < 5 || byTopic["deadletter.flaky"] < 5 {
		select {
		case it := <-dlq:
			byTopic[it.Topic]++
			e, _ := eventkit.UnmarshalEvent(it.Event)
			if e.Extensions()["dlqerror"] == nil {
				t.Errorf("dead letter without dlqerror: %s", it.Event)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("dead letters: %v", byTopic)
		}
	}
	if byTopic["deadletter.gone"] != 5 || byTopic["deadletter.flaky"] != 5 {
		t.Fatalf("dead letters %v", byTopic)
	}
}

// recorderFunc adapts a function to eventkit.Publisher for a webhook.
type recorderFunc func(topic string, e event.Event) error

func (f recorderFunc) Publish(_ context.Context, topic string, events ...event.Event) error {
	for _, e := range events {
		if err := f(topic, e); err != nil {
			return err
		}
	}
	return nil
}
func (f recorderFunc) Close() error { return nil }

func TestConfig(t *testing.T) {
	cfg, err := hub.ParseConfig([]byte(`
listen: 0.0.0.0:9000
data_dir: /var/lib/eventkit
broker:
  retention: 48h
subscriptions:
  - name: billing
    topic: orders.>
    url: https://billing.example.com/hooks/orders
    max_attempts: 8
    backoff: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Subscriptions[0]
	if cfg.Listen != "0.0.0.0:9000" || cfg.Broker.Retention != hub.Duration(48*time.Hour) || sc.MaxAttempts != 8 ||
		sc.Backoff != hub.Duration(2*time.Second) || sc.DeadLetter != "deadletter.billing" || sc.Mode != "binary" || sc.Concurrency != 1 {
		t.Fatalf("config %+v", cfg)
	}
	def, err := hub.ParseConfig(nil)
	if err != nil || def.Listen != hub.DefaultListen || def.DataDir != hub.DefaultDataDir || def.Broker.URL != "" {
		t.Fatalf("defaults %+v: %v", def, err)
	}
	for _, bad := range []string{
		"listne: x",
		"listen: nope",
		"broker: {url: 'http://x'}",
		"subscriptions: [{name: a, topic: 'a..b', url: 'http://x'}]",
		"subscriptions: [{name: a, topic: 'a.>', url: 'ftp://x'}]",
		"subscriptions: [{name: 'a b', topic: 'a.>', url: 'http://x'}]",
		"subscriptions: [{name: a, topic: 'a.>', url: 'http://x'}, {name: a, topic: 'b', url: 'http://x'}]",
		"subscriptions: [{name: a, topic: '>', url: 'http://x'}]",
		"subscriptions: [{name: a, topic: 'a', url: 'http://x', backoff: soon}]",
	} {
		if _, err := hub.ParseConfig([]byte(bad)); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
}

func TestSubscriptionHandshake(t *testing.T) {
	hook := httptest.NewServer(cehttp.NewHandler(memory.New(), cehttp.WithAllowedOrigins("hub.example")))
	defer hook.Close()
	bus := memory.New()
	defer bus.Close()
	cfg := hub.Config{Listen: "127.0.0.1:0", Subscriptions: []hub.SubscriptionConfig{{Name: "h", Topic: "a.>", URL: hook.URL, HandshakeOrigin: "evil.example", AllowPrivateTargets: true}}}
	if _, err := hub.New(cfg, hub.WithBroker(bus, bus), hub.WithLogger(quiet)); err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("refused handshake: %v", err)
	}
	cfg.Subscriptions[0].HandshakeOrigin = "hub.example"
	start(t, cfg, hub.WithBroker(memory.New(), memory.New()))
}

// TestSubscriptionEgressIsSafe: a webhook on loopback is refused unless
// allowed, and a webhook answering with a redirect to another host is a
// failed delivery (dead-lettered), never a delivered one; the other host
// receives nothing.
func TestSubscriptionEgressIsSafe(t *testing.T) {
	other := newWebhook(t, 0, http.StatusNoContent) // counts what reaches it
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if strings.HasSuffix(r.URL.Path, "307") {
			code = http.StatusTemporaryRedirect
		}
		http.Redirect(w, r, other.srv.URL, code)
	}))
	defer redirect.Close()
	fast := hub.Duration(10 * time.Millisecond)
	cfg := hub.Config{Subscriptions: []hub.SubscriptionConfig{
		{Name: "loopback", Topic: "orders.>", URL: other.srv.URL, MaxAttempts: 2, Backoff: fast},
		{Name: "r302", Topic: "orders.>", URL: redirect.URL + "/302", MaxAttempts: 2, Backoff: fast, AllowPrivateTargets: true},
		{Name: "r307", Topic: "orders.>", URL: redirect.URL + "/307", MaxAttempts: 2, Backoff: fast, AllowPrivateTargets: true, FollowRedirects: "same_origin"},
	}}
	bus := memory.New()
	s := startAsIs(t, cfg, hub.WithBroker(bus, bus))
	dlq := sse(t, s.URL(), "deadletter.*")
	if r := postEvent(t, s.URL(), "1", "orders.created"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	got := map[string]bool{}
	for len(got) < 3 {
		select {
		case it := <-dlq:
			got[it.Topic] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("dead letters: %v", got)
		}
	}
	if m := metricsText(t, s.URL()); strings.Contains(m, `outcome="delivered"`) {
		t.Errorf("a refused or redirected delivery was counted delivered:\n%s", grep(m, "deliveries_total"))
	}
	if n := other.attempts.Load(); n != 0 {
		t.Errorf("%d requests reached the loopback or redirect target", n)
	}
}

// grep returns the lines of s containing sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
