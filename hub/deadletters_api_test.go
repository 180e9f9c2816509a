package hub_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/deadletter"
	"github.com/eventkit/eventkit/hub"
)

// switchHook is a webhook that answers 503 while failing is set, and
// otherwise records each event it takes with its redrivecount.
type switchHook struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	got     map[string][]int // id → the redrivecount of each delivery
}

func newSwitchHook(t *testing.T, failing bool) *switchHook {
	h := &switchHook{got: map[string][]int{}}
	h.failing.Store(failing)
	ok := cehttp.NewHandler(recorderFunc(func(_ string, e event.Event) error {
		h.mu.Lock()
		h.got[e.ID()] = append(h.got[e.ID()], deadletter.RedriveCount(&e))
		h.mu.Unlock()
		return nil
	}), cehttp.WithLogger(quiet))
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *switchHook) deliveries(id string) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got[id]...)
}

// deadLetters lists GET /deadletters?query.
func deadLetters(t *testing.T, base, query string, hdr ...string) []deadletter.Item {
	t.Helper()
	code, b := call(t, http.MethodGet, base+"/deadletters?"+query, "", hdr...)
	if code != http.StatusOK {
		t.Fatalf("GET /deadletters?%s: %d %s", query, code, b)
	}
	var out []deadletter.Item
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var it deadletter.Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, it)
	}
	return out
}

// waitDeadLetters waits until the subscription has n dead letters and
// returns them.
func waitDeadLetters(t *testing.T, base, sub string, n int) []deadletter.Item {
	t.Helper()
	var items []deadletter.Item
	waitFor(t, "dead letters of "+sub, func() bool {
		items = deadLetters(t, base, "subscription="+sub)

		return len(items) >= n
	})
	if len(items) != n {
		t.Fatalf("%d dead letters, want %d", len(items), n)
	}
	return items
}

// TestDeadLetterRedrive is the done-when test of the dead-letter API: an
// event failing its webhook MaxAttempts times is listed; re-driven (within
// the broker's duplicate window of its first publish, which must not
// swallow it) it reaches the now healthy webhook once, with its id and a
// redrivecount of 1, and not again the subscription that had taken it;
// four re-drives of it at once publish it once; the DLQ is then empty.
func TestDeadLetterRedrive(t *testing.T) {
	hook := newSwitchHook(t, true)
	other := newSwitchHook(t, false)
	s := start(t, hub.Config{DataDir: t.TempDir(), Subscriptions: []hub.SubscriptionConfig{
		{Name: "hook", Topic: "orders.>", URL: hook.srv.URL, MaxAttempts: 3, Backoff: hub.Duration(10 * time.Millisecond)},
		{Name: "other", Topic: "orders.>", URL: other.srv.URL},
	}})
	if r := postEvent(t, s.URL(), "e-1", "orders.created", "ce-correlationid", "c-1"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	items := waitDeadLetters(t, s.URL(), "hook", 1)
	dl := items[0]
	e, err := dl.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if dl.Subscription != "hook" || dl.Topic != "deadletter.hook" || e.ID() != "e-1" ||
		e.Extensions()[deadletter.ExtTopic] != "orders.created" || e.Extensions()[deadletter.ExtAttempts] != int32(3) {
		t.Fatalf("dead letter %+v: %s", dl, e)
	}
	if code, b := call(t, http.MethodGet, s.URL()+"/deadletters/"+dl.Position, ""); code != http.StatusOK || !strings.Contains(string(b), `"subscription":"hook"`) {
		t.Fatalf("GET /deadletters/%s: %d %s", dl.Position, code, b)
	}

	hook.failing.Store(false)
	var wg sync.WaitGroup
	var oks atomic.Int32
	answers := make([][]byte, 4)
	for i := range answers {
		wg.Go(func() {
			code, b := call(t, http.MethodPost, s.URL()+"/deadletters/"+dl.Position+"/redrive", "")
			if code == http.StatusOK {
				oks.Add(1)
				answers[i] = b
			} else if code != http.StatusNotFound {
				t.Errorf("POST redrive: %d %s", code, b)
			}
		})
	}
	wg.Wait()
	if oks.Load() == 0 {
		t.Fatal("no re-drive succeeded")
	}
	for _, b := range answers {
		if b == nil {
			continue
		}
		var it deadletter.Item
		if err := json.Unmarshal(b, &it); err != nil {
			t.Fatal(err)
		}
		re, _ := it.Decode()
		if it.Topic != "orders.created" || re.ID() != "e-1" || deadletter.RedriveCount(&re) != 1 {
			t.Fatalf("re-drive answered %s", b)
		}
	}
	waitFor(t, "the re-driven event at the webhook", func() bool { return len(hook.deliveries("e-1")) > 0 })
	// The store holds the event twice on its topic: as published and as
	// re-driven once, however many re-drives ran.
	var tl struct{ Items []deadletter.Item }
	code, b := call(t, http.MethodGet, s.URL()+"/probe?correlationid=c-1", "")
	if code != http.StatusOK || json.Unmarshal(b, &tl) != nil {
		t.Fatalf("GET /probe: %d %s", code, b)
	}
	if len(tl.Items) != 2 || tl.Items[0].Topic != "orders.created" || tl.Items[1].Topic != "orders.created" {
		t.Fatalf("stored copies of e-1: %s (answers %q, hook %v)", b, answers, hook.deliveries("e-1"))
	}
	waitFor(t, "the other subscription skipping the re-drive", func() bool {
		return metricValue(t, s.URL(), `eventkit_subscription_deliveries_total{outcome="filtered",subscription="other"}`) == 1
	})
	if got := hook.deliveries("e-1"); len(got) != 1 || got[0] != 1 {
		t.Errorf("webhook deliveries of e-1 (their redrivecount): %v, want [1]", got)
	}
	if got := other.deliveries("e-1"); len(got) != 1 || got[0] != 0 {
		t.Errorf("other subscription's deliveries of e-1: %v, want [0]", got)
	}
	if left := deadLetters(t, s.URL(), "subscription=hook"); len(left) != 0 {
		t.Errorf("dead letters left: %d", len(left))
	}
	if v := metricValue(t, s.URL(), `eventkit_subscription_redriven_total{subscription="hook"}`); v != 1 {
		t.Errorf("redriven_total %v, want 1", v)
	}
}

// TestDeadLetterPurgeAndRedriveAll: purge empties a subscription's DLQ and
// leaves others'; re-drive of a whole subscription; an event that is not a
// dead letter can be neither read, deleted nor re-driven through the API;
// the writes need the admin scope.
func TestDeadLetterPurgeAndRedriveAll(t *testing.T) {
	hook := newSwitchHook(t, true)
	keep := newSwitchHook(t, true)
	cfg := hub.Config{DataDir: t.TempDir(), Auth: hub.AuthConfig{Tokens: []hub.TokenConfig{{Token: "all"}, {Token: "reader", Scopes: []string{hub.ScopeRead}}}},
		Subscriptions: []hub.SubscriptionConfig{
			{Name: "hook", Topic: "a.>", URL: hook.srv.URL, MaxAttempts: 1},
			{Name: "keep", Topic: "b.>", URL: keep.srv.URL, MaxAttempts: 1, DeadLetter: "parked.keep"},
		}}
	s := start(t, cfg)
	all, reader := []string{"Authorization", "Bearer all"}, []string{"Authorization", "Bearer reader"}
	for _, id := range []string{"1", "2", "3"} {
		postEvent(t, s.URL(), id, "a.created", append(all, "ce-subject", "a")...)
	}
	postEvent(t, s.URL(), "k", "b.created", all...)
	waitFor(t, "dead letters", func() bool {
		return len(deadLetters(t, s.URL(), "subscription=hook", reader...)) == 3 && len(deadLetters(t, s.URL(), "", reader...)) == 4
	})
	if got := deadLetters(t, s.URL(), "subscription=keep", reader...); len(got) != 1 || got[0].Topic != "parked.keep" {
		t.Fatalf("keep's dead letters: %+v", got)
	}
	if got := deadLetters(t, s.URL(), "limit=2", reader...); len(got) != 2 {
		t.Errorf("limit=2: %d", len(got))
	}
	// The original events are not dead letters.
	var tl struct{ Items []deadletter.Item }
	_, b := call(t, http.MethodGet, s.URL()+"/probe?subject=a", "", reader...)
	if err := json.Unmarshal(b, &tl); err != nil || len(tl.Items) < 3 {
		t.Fatalf("probe: %s", b)
	}
	orig := tl.Items[0].Position
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/deadletters/" + orig}, {http.MethodDelete, "/deadletters/" + orig},
		{http.MethodPost, "/deadletters/" + orig + "/redrive"}, {http.MethodGet, "/deadletters/x"},
	} {
		if code, b := call(t, c.method, s.URL()+c.path, "", all...); code != http.StatusNotFound {
			t.Errorf("%s %s: %d %s, want 404", c.method, c.path, code, b)
		}
	}
	if code, _ := call(t, http.MethodDelete, s.URL()+"/deadletters?subscription=hook", "", reader...); code != http.StatusForbidden {
		t.Errorf("purge with a read token: %d", code)
	}
	for _, path := range []string{"/deadletters", "/deadletters/1", "/probe?subject=a"} {
		if code, _ := call(t, http.MethodGet, s.URL()+path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
	}
	if code, _ := call(t, http.MethodPost, s.URL()+"/deadletters/1/redrive", "", reader...); code != http.StatusForbidden {
		t.Errorf("re-drive with a read token: %d, want 403", code)
	}
	if code, _ := call(t, http.MethodDelete, s.URL()+"/deadletters", "", all...); code != http.StatusBadRequest {
		t.Errorf("purge without subscription: %d", code)
	}

	hook.failing.Store(false)
	code, b := call(t, http.MethodPost, s.URL()+"/deadletters/redrive?subscription=hook", "", all...)
	if code != http.StatusOK || strings.TrimSpace(string(b)) != `{"redriven":3}` {
		t.Fatalf("redrive all: %d %s", code, b)
	}
	waitFor(t, "3 re-driven events", func() bool {
		return len(hook.deliveries("1")) == 1 && len(hook.deliveries("2")) == 1 && len(hook.deliveries("3")) == 1
	})
	code, b = call(t, http.MethodDelete, s.URL()+"/deadletters?subscription=keep", "", all...)
	if code != http.StatusOK || strings.TrimSpace(string(b)) != `{"purged":1}` {
		t.Fatalf("purge: %d %s", code, b)
	}
	if left := deadLetters(t, s.URL(), "", reader...); len(left) != 0 {
		t.Errorf("dead letters left: %+v", left)
	}
}
