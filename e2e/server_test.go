package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/testkit"
)

// The server under test: a hub with a token and one subscription, and in
// front of it the stand-ins of the routes it lacks.

const token = "console-e2e-token"

// console is a running hub with a token, a subscription "billing" on
// order.> to a webhook, and the URL the browser uses.
type console struct {
	s    *hub.Server
	hook *webhook
	url  string
}

func startConsole(t *testing.T) *console {
	t.Helper()
	hook := newWebhook(t)
	cfg := hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Auth: hub.AuthConfig{Token: token},
		Subscriptions: []hub.SubscriptionConfig{{Name: "billing", Topic: "order.>", URL: hook.srv.URL,
			AllowPrivateTargets: true, Backoff: hub.Duration(10 * time.Millisecond)}}}
	s, err := hub.New(cfg, hub.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	// Run until the test ends (t.Context ends before the cleanups run; go
	// test's -timeout bounds the shutdown).
	ran := make(chan error, 1)
	go func() { ran <- s.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the hub healthy", func() bool {
		code, _ := request(s.URL(), http.MethodGet, "/healthz", "", "")
		return code == http.StatusOK
	})
	c := &console{s: s, hook: hook, url: s.URL()}
	// The routes of the inspection API that this server lacks are stood in
	// for by the stub (stub_test.go).
	_, ctype := request(s.URL(), http.MethodGet, "/events?limit=1", token, "")
	haveEvents := strings.HasPrefix(ctype, "application/x-ndjson")
	code, _ := request(s.URL(), http.MethodGet, "/deadletters?limit=1", token, "")
	haveDeadLetters := code == http.StatusOK
	if !haveEvents || !haveDeadLetters {
		t.Logf("stand-ins for the routes the server lacks: GET /events %v, dead letters %v", !haveEvents, !haveDeadLetters)
		front := httptest.NewServer(newStub(t, s, token).wrap(s.Handler(), haveEvents, haveDeadLetters))
		t.Cleanup(front.Close)
		c.url = front.URL
	}
	return c
}

// request makes one request and returns its status and content type.
func request(base, method, path, tok, body string) (int, string) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

// publish posts one event in binary mode; its type is its topic.
func (c *console) publish(t *testing.T, id, typ, subject, data string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.s.URL()+"/events", strings.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", id)
	req.Header.Set("ce-source", "/shop")
	req.Header.Set("ce-type", typ)
	req.Header.Set("ce-subject", subject)
	req.Header.Set("ce-traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /events %s: %d", id, resp.StatusCode)
	}
}

// waitFor fails t unless cond holds within 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, what, cond)
}

// This file is a stand-in, for the tests only, of the inspection routes
// that other branches build (GET /events and /events/{position}, the dead
// letters), used only when the server under test does not answer them
// yet: it follows the contract of docs/operate.md on the server's own
// store, read through its Subscriber from the start.

// item is one stored event (Subscription names the subscription of a dead
// letter).
type item struct {
	Position, Topic, Subscription string
	Stored                        time.Time
	Event                         json.RawMessage
}

// MarshalJSON writes the item as the inspection API answers it.
func (it item) MarshalJSON() ([]byte, error) {
	m := map[string]any{"position": it.Position, "topic": it.Topic, "stored": it.Stored, "event": it.Event}
	if it.Subscription != "" {
		m["subscription"] = it.Subscription
	}
	return json.Marshal(m)
}

type stub struct {
	s     *hub.Server
	token string

	mu       sync.Mutex
	items    []item
	redriven map[string]bool // dead letters re-driven (removed)
}

// newStub reads every stored event of s into the stub until the test ends.
func newStub(t *testing.T, s *hub.Server, token string) *stub {
	st := &stub{s: s, token: token, redriven: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := s.Subscriber().Subscribe(ctx, ">", eventkit.FromStart())
	if err != nil {
		t.Fatalf("stub: subscribe: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range sub.Messages() {
			b, _ := eventkit.MarshalEvent(m.Event)
			st.mu.Lock()
			it := item{Position: strconv.Itoa(len(st.items) + 1), Topic: m.Topic, Stored: time.Now().UTC(), Event: b}
			if name, ok := strings.CutPrefix(m.Topic, "deadletter."); ok {
				it.Subscription = name
			}
			st.items = append(st.items, it)
			st.mu.Unlock()
			_ = m.Ack()
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
	return st
}

func (st *stub) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+st.token {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"status":401,"detail":"a bearer token is required"}`))
		return false
	}
	return true
}

func (st *stub) find(pos string) (item, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, it := range st.items {
		if it.Position == pos {
			return it, true
		}
	}
	return item{}, false
}

// matches applies the exact-match attribute filters of a query.
func matches(it item, q map[string][]string) bool {
	var ev map[string]any
	_ = json.Unmarshal(it.Event, &ev)
	for k, v := range q {
		switch k {
		case "topic", "since", "until", "after", "limit", "sql", "subscription":
			continue
		}
		if s, _ := ev[k].(string); s != v[0] {
			return false
		}
	}
	return true
}

// events answers GET /events (NDJSON items and the trailer).
func (st *stub) events(w http.ResponseWriter, r *http.Request, deadLetters bool) {
	q := r.URL.Query()
	st.mu.Lock()
	var out []item
	for _, it := range st.items {
		dl := it.Subscription != ""
		if dl != deadLetters || st.redriven[it.Position] || !matches(it, q) {
			continue
		}
		if sub := q.Get("subscription"); deadLetters && sub != "" && it.Subscription != sub {
			continue
		}
		if topic := q.Get("topic"); !deadLetters && topic != "" && topic != ">" && topic != it.Topic {
			continue
		}
		out = append(out, it)
	}
	st.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, it := range out {
		_ = enc.Encode(it)
	}
	next := ""
	if len(out) > 0 {
		next = out[len(out)-1].Position
	}
	if !deadLetters {
		_ = enc.Encode(map[string]any{"next": next, "more": false})
	}
}

// redrive publishes a dead letter to its original topic and removes it.
func (st *stub) redrive(w http.ResponseWriter, r *http.Request, pos string) {
	it, ok := st.find(pos)
	if !ok || it.Subscription == "" {
		http.NotFound(w, r)
		return
	}
	e, err := eventkit.UnmarshalEvent(it.Event)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	topic, _ := e.Extensions()["dlqtopic"].(string)
	n, _ := e.Extensions()["redrivecount"].(int32)
	e.SetExtension("redrivecount", n+1)
	// The real route publishes under an idempotency key of its own (the
	// broker drops an event id it stored within two minutes); through a
	// Publisher the stub can only make the publication differ by its
	// source.
	e.SetSource(e.Source() + "#redrive-" + strconv.Itoa(int(n+1)))
	if err := st.s.Publisher().Publish(r.Context(), topic, e); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	st.mu.Lock()
	st.redriven[pos] = true
	st.mu.Unlock()
	b, _ := eventkit.MarshalEvent(e)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(item{Position: pos, Topic: topic, Stored: it.Stored, Event: b})
}

// wrap serves the routes the server lacks (real says which it has) and
// passes the others to it.
func (st *stub) wrap(real http.Handler, haveEvents, haveDeadLetters bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case !haveEvents && r.Method == http.MethodGet && p == "/events":
			if st.authorized(w, r) {
				st.events(w, r, false)
			}
		case !haveEvents && r.Method == http.MethodGet && strings.HasPrefix(p, "/events/") && p != "/events/stream":
			if st.authorized(w, r) {
				if it, ok := st.find(strings.TrimPrefix(p, "/events/")); ok {
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(it)
				} else {
					http.NotFound(w, r)
				}
			}
		case !haveDeadLetters && r.Method == http.MethodGet && p == "/deadletters":
			if st.authorized(w, r) {
				st.events(w, r, true)
			}
		case !haveDeadLetters && r.Method == http.MethodPost && strings.HasPrefix(p, "/deadletters/") && strings.HasSuffix(p, "/redrive"):
			if st.authorized(w, r) {
				st.redrive(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/deadletters/"), "/redrive"))
			}
		default:
			real.ServeHTTP(w, r)
		}
	})
}
