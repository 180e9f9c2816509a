package hub_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// consoleGet reads a console API answer into v, with the bearer token tok
// when it is not "".
func consoleGet(t *testing.T, url, tok string, v any) int {
	t.Helper()
	var hdr []string
	if tok != "" {
		hdr = []string{"Authorization", "Bearer " + tok}
	}
	code, b := call(t, http.MethodGet, url, "", hdr...)
	if code == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, b)
		}
	}
	return code
}

func TestConsoleAssetsAreEmbeddedAndOffline(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Auth: hub.AuthConfig{Token: "s3cret"}})
	// The assets hold no data: they are served without the token.
	for _, p := range []string{"/console/", "/console/console.js", "/console/console.css"} {
		resp, err := http.Get(s.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
	}
	// Nothing the UI loads comes from elsewhere.
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["']https?:`)
	err := fs.WalkDir(hub.ConsoleAssets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(hub.ConsoleAssets(), p)
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers outside the server: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL() + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/" {
		t.Errorf("/console led to %s, not /console/", resp.Request.URL.Path)
	}
}

func TestConsoleAPIRequiresTheToken(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Auth: hub.AuthConfig{Tokens: []hub.TokenConfig{
		{Token: "reader", Scopes: []string{hub.ScopeRead}},
		{Token: "publisher", Scopes: []string{hub.ScopePublish}},
	}}})
	for _, p := range []string{"/console/api/topics", "/console/api/subscriptions"} {
		if code := consoleGet(t, s.URL()+p, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, code)
		}
		if code := consoleGet(t, s.URL()+p, "wrong", nil); code != http.StatusForbidden {
			t.Errorf("GET %s with a wrong token: %d, want 403", p, code)
		}
		if code := consoleGet(t, s.URL()+p, "publisher", nil); code != http.StatusForbidden {
			t.Errorf("GET %s without the read scope: %d, want 403", p, code)
		}
		if code := consoleGet(t, s.URL()+p, "reader", nil); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", p, code)
		}
	}
}

func TestConsoleTopicsCountsRatesAndSizes(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	for i := range 3 {
		postEvent(t, s.URL(), fmt.Sprint("o", i), "order.created", "ce-subject", "orders")
	}
	postEvent(t, s.URL(), "p0", "payment.made", "ce-subject", "payments")
	var got hub.ConsoleTopics
	if code := consoleGet(t, s.URL()+"/console/api/topics", "", &got); code != http.StatusOK {
		t.Fatalf("GET /console/api/topics: %d", code)
	}
	if got.Stream == nil || got.Stream.Messages != 4 || got.Stream.Bytes == 0 {
		t.Fatalf("stream %+v, want 4 events stored", got.Stream)
	}
	byTopic := map[string]hub.ConsoleTopic{}
	for _, x := range got.Topics {
		byTopic[x.Topic] = x
	}
	want := map[string]uint64{"order.created": 3, "payment.made": 1} // the type is the topic
	if len(byTopic) != len(want) {
		t.Fatalf("topics %+v, want %v", got.Topics, want)
	}
	for name, n := range want {
		x := byTopic[name]
		if x.Stored == nil || *x.Stored != n || x.Accepted != n {
			t.Errorf("%s: stored %v, accepted %d, want %d and %d", name, x.Stored, x.Accepted, n, n)
		}
		// Each event's JSON ({"specversion":"1.0","id":"o0",...,"data":{"n":"o0"}})
		// is over 100 bytes and under 300.
		if mean := x.AcceptedBytes / max(x.Accepted, 1); mean < 100 || mean > 300 {
			t.Errorf("%s: %d bytes for %d events", name, x.AcceptedBytes, x.Accepted)
		}
		if x.Rate <= 0 || x.LastSeen.IsZero() {
			t.Errorf("%s: rate %v, last seen %v", name, x.Rate, x.LastSeen)
		}
	}
}

func TestConsoleSubscriptionsOutcomesLagAndHeatmap(t *testing.T) {
	ok := newWebhook(t, 0, 0)
	gone := newWebhook(t, 0, http.StatusGone)
	s := start(t, hub.Config{DataDir: t.TempDir(), Subscriptions: []hub.SubscriptionConfig{
		{Name: "ok", Topic: "order.created", URL: ok.srv.URL},
		{Name: "gone", Topic: "order.created", URL: gone.srv.URL},
	}})
	for i := range 5 {
		postEvent(t, s.URL(), fmt.Sprint(i), "order.created")
	}
	var got hub.ConsoleSubscriptions
	bySub := map[string]hub.ConsoleSubscription{}
	// The counters are read one after the other: wait until they all
	// tell of the 5 deliveries.
	waitFor(t, "5 outcomes and 5 delivery times of each subscription, no lag", func() bool {
		consoleGet(t, s.URL()+"/console/api/subscriptions", "", &got)
		for _, x := range got.Subscriptions {
			bySub[x.ID] = x
		}
		o, g := bySub["ok"], bySub["gone"]
		return o.Outcomes["delivered"] == 5 && g.Outcomes["dead_lettered"] == 5 && heatmapTotal(o.Latency) == 5 && heatmapTotal(g.Latency) == 5 &&
			o.Lag != nil && o.Lag.Pending == 0 && o.Lag.AckPending == 0 && g.Lag != nil && g.Lag.Pending == 0 && g.Lag.AckPending == 0
	})
	o := bySub["ok"]
	if o.Topic != "order.created" || o.Sink != ok.srv.URL || !o.FromConfiguration || o.DeadLetter != "deadletter.ok" {
		t.Errorf("ok: %+v", o)
	}
	if o.Lag.Position == 0 {
		t.Errorf("ok: lag %+v, want the position of the last delivery", o.Lag)
	}
	for name, x := range bySub {
		// Every attempt is in the heatmap once (waited for above), in a
		// row at or above its time (loopback deliveries take less than 2 s).
		for _, c := range x.Latency.Columns {
			if len(c.Counts) != len(x.Latency.Rows) {
				t.Fatalf("%s: column of %d counts for %d rows", name, len(c.Counts), len(x.Latency.Rows))
			}
		}
		for i, r := range x.Latency.Rows {
			if r > 2 || (i > 0 && r <= x.Latency.Rows[i-1]) {
				t.Errorf("%s: rows %v", name, x.Latency.Rows)
			}
		}
		if last := x.Latency.Columns[len(x.Latency.Columns)-1].End; time.Since(last) > time.Minute {
			t.Errorf("%s: the last column ends at %v", name, last)
		}
	}
}

// TestCrossOriginWritesAreRefused: a page of another origin cannot make
// the operator's browser write to the server (re-drive, delete, subscribe),
// even one without credentials; clients other than browsers, and the
// console itself, are not affected.
func TestCrossOriginWritesAreRefused(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}})
	snk := newSink(t)
	body := `{"protocol":"HTTP","sink":"` + snk.srv.URL + `"}`
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Origin", "http://attacker.example"},
	} {
		code, b := call(t, http.MethodPost, s.URL()+"/subscriptions", body, hdr...)
		if code != http.StatusForbidden {
			t.Errorf("POST /subscriptions with %s: %d %s, want 403", hdr, code, b)
		}
		code, _ = call(t, http.MethodDelete, s.URL()+"/subscriptions/x", "", hdr...)
		if code != http.StatusForbidden {
			t.Errorf("DELETE /subscriptions/x with %s: %d, want 403", hdr, code)
		}
	}
	// Reading is not a write; the ingress is CORS's to decide.
	if code, _ := call(t, http.MethodGet, s.URL()+"/subscriptions", "", "Sec-Fetch-Site", "cross-site"); code != http.StatusOK {
		t.Errorf("cross-site GET /subscriptions: %d", code)
	}
	if r := postEvent(t, s.URL(), "x1", "t", "Sec-Fetch-Site", "cross-site"); r.StatusCode != http.StatusNoContent {
		t.Errorf("cross-site POST /events: %d", r.StatusCode)
	}
	createSub(t, s.URL(), body, "Sec-Fetch-Site", "same-origin")
	createSub(t, s.URL(), body) // not a browser
}

// heatmapTotal counts the deliveries of a heatmap.
func heatmapTotal(h hub.Heatmap) uint64 {
	var n uint64
	for _, c := range h.Columns {
		for _, v := range c.Counts {
			n += v
		}
	}
	return n
}

// TestConsoleOnAnotherBroker: without JetStream the console says what it
// cannot know (no store, no stored counts, no lag) and counts the rest.
func TestConsoleOnAnotherBroker(t *testing.T) {
	ok := newWebhook(t, 0, 0)
	bus := memory.New()
	s := start(t, hub.Config{Subscriptions: []hub.SubscriptionConfig{{Name: "ok", Topic: "order.created", URL: ok.srv.URL}}},
		hub.WithBroker(bus, bus))
	postEvent(t, s.URL(), "o1", "order.created")
	var topics hub.ConsoleTopics
	consoleGet(t, s.URL()+"/console/api/topics", "", &topics)
	if topics.Stream != nil || len(topics.Topics) != 1 || topics.Topics[0].Stored != nil || topics.Topics[0].Accepted != 1 {
		t.Errorf("topics %+v, want order.created accepted once, nothing about a store", topics)
	}
	var subs hub.ConsoleSubscriptions
	waitFor(t, "the delivery counted", func() bool {
		consoleGet(t, s.URL()+"/console/api/subscriptions", "", &subs)
		return len(subs.Subscriptions) == 1 && subs.Subscriptions[0].Outcomes["delivered"] == 1
	})
	if subs.Subscriptions[0].Lag != nil {
		t.Errorf("lag %+v without JetStream, want null", subs.Subscriptions[0].Lag)
	}
}
