package hub_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// TestSubscriptionEgressIsSafe: a webhook on loopback is refused unless
// allowed, and a webhook answering with a redirect to another host is a
// failed delivery (dead-lettered), never a delivered one; the other host
// receives nothing.
func TestSubscriptionEgressIsSafe(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if strings.HasSuffix(r.URL.Path, "307") {
			code = http.StatusTemporaryRedirect
		}
		http.Redirect(w, r, other.URL, code)
	}))
	defer redirect.Close()
	fast := hub.Duration(10 * time.Millisecond)
	cfg := hub.Config{Subscriptions: []hub.SubscriptionConfig{
		{Name: "loopback", Topic: "orders.>", URL: other.URL, MaxAttempts: 2, Backoff: fast},
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
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), `outcome="delivered"`) {
		t.Errorf("a refused or redirected delivery was counted delivered:\n%s", grep(string(b), "deliveries_total"))
	}
	if n := elsewhere.Load(); n != 0 {
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
