package interop

// The harness: eventkit serve in the process, and eventkit transports on
// the shared servers.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/testkit"
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
			// A stop is a shutdown, not a failure, even one that comes
			// while the hub starts: Run returns nil.
			if err != nil {
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
