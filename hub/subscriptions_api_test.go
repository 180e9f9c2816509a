package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// call makes an API request with a JSON body (when body is not "") and
// returns the status and the body.
func call(t *testing.T, method, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// createSub posts a subscription and returns it as answered.
func createSub(t *testing.T, base, body string, hdr ...string) hub.APISubscription {
	t.Helper()
	code, b := call(t, http.MethodPost, base+"/subscriptions", body, hdr...)
	if code != http.StatusCreated {
		t.Fatalf("POST /subscriptions: %d %s", code, b)
	}
	var sub hub.APISubscription
	if err := json.Unmarshal(b, &sub); err != nil || sub.ID == "" {
		t.Fatalf("POST /subscriptions answered %s (%v)", b, err)
	}
	return sub
}

// sink records the events delivered to it, with the requests' headers.
type sink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	ids  []string
	hdrs []http.Header
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	var cur http.Header
	h := cehttp.NewHandler(recorderFunc(func(_ string, e event.Event) error {
		s.mu.Lock()
		s.ids = append(s.ids, e.ID())
		s.hdrs = append(s.hdrs, cur)
		s.mu.Unlock()
		return nil
	}), cehttp.WithLogger(quiet))
	var serial sync.Mutex
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serial.Lock()
		defer serial.Unlock()
		cur = r.Header.Clone()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) got() ([]string, []http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...), append([]http.Header(nil), s.hdrs...)
}

func (s *sink) has(id string) bool {
	ids, _ := s.got()
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// metricValue reads one sample of the server's /metrics page (0 when
// absent).
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(metricsText(t, base), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// TestSubscriptionsAPIPrefixFilterDelivers is the done-when test of the
// Subscriptions API (issue 19): a subscription created with POST
// /subscriptions and a prefix filter delivers exactly the matching events
// to its sink.
func TestSubscriptionsAPIPrefixFilterDelivers(t *testing.T) {
	snk := newSink(t)
	s := start(t, hub.Config{DataDir: t.TempDir(), SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}})
	sub := createSub(t, s.URL(), `{"protocol": "HTTP", "sink": "`+snk.srv.URL+`",
		"filters": [{"prefix": {"type": "com.example.orders."}}]}`)
	var want []string
	for i := 0; i < 10; i++ {
		m, n := fmt.Sprintf("match-%d", i), fmt.Sprintf("other-%d", i)
		want = append(want, m)
		for _, p := range [][2]string{{m, "com.example.orders.created"}, {n, "com.example.payments.done"}} {
			if r := postEvent(t, s.URL(), p[0], p[1]); r.StatusCode != http.StatusNoContent {
				t.Fatalf("POST /events: %d", r.StatusCode)
			}
		}
	}
	// Every event is either delivered or filtered out (and counted): once
	// the last matching one arrived and the 10 others were counted, all 20
	// were handled.
	filtered := `eventkit_subscription_deliveries_total{outcome="filtered",subscription="` + sub.ID + `"}`
	waitFor(t, "the 20 events handled", func() bool { return snk.has("match-9") && metricValue(t, s.URL(), filtered) == 10 })
	ids, _ := snk.got()
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("the sink got %v, want exactly %v, in order", ids, want)
	}
}

// TestSubscriptionsAPIDurable restarts the server on its data directory:
// a subscription made through the API is still there and delivers; one
// deleted stays deleted.
func TestSubscriptionsAPIDurable(t *testing.T) {
	snk := newSink(t)
	cfg := hub.Config{DataDir: t.TempDir(), SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}}
	s := start(t, cfg)
	body := `{"protocol": "HTTP", "sink": "` + snk.srv.URL + `", "types": ["orders.created"],
		"config": {"max_attempts": 7, "backoff": "20ms"}}`
	kept := createSub(t, s.URL(), body)
	gone := createSub(t, s.URL(), body)
	if code, b := call(t, http.MethodDelete, s.URL()+"/subscriptions/"+gone.ID, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s2 := start(t, cfg)
	code, b := call(t, http.MethodGet, s2.URL()+"/subscriptions", "")
	var list []hub.APISubscription
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil {
		t.Fatalf("GET /subscriptions after the restart: %d %s", code, b)
	}
	if len(list) != 1 || list[0].ID != kept.ID || list[0].Config["max_attempts"] != "7" || list[0].Config["backoff"] != "20ms" {
		t.Fatalf("after the restart: %s, want only %s with its config", b, kept.ID)
	}
	if code, _ := call(t, http.MethodGet, s2.URL()+"/subscriptions/"+gone.ID, ""); code != http.StatusNotFound {
		t.Fatalf("GET of the deleted subscription after the restart: %d, want 404", code)
	}
	postEvent(t, s2.URL(), "skipped", "orders.deleted")
	postEvent(t, s2.URL(), "after-restart", "orders.created")
	waitFor(t, "a delivery after the restart", func() bool { return snk.has("after-restart") })
	if ids, _ := snk.got(); len(ids) != 1 {
		t.Fatalf("the sink got %v, want only after-restart", ids)
	}
}

// TestSubscriptionsAPIRetryAndDeadLetter: an API subscription retries and
// dead-letters like one of the configuration, and never receives its own
// dead letters back (its default topic is every topic).
func TestSubscriptionsAPIRetryAndDeadLetter(t *testing.T) {
	flaky := newWebhook(t, 0, http.StatusServiceUnavailable)
	bus := memory.New()
	s := start(t, hub.Config{SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}}, hub.WithBroker(bus, bus))
	sub := createSub(t, s.URL(), `{"protocol": "HTTP", "sink": "`+flaky.srv.URL+`",
		"config": {"max_attempts": "3", "backoff": "5ms", "max_backoff": "10ms"}}`)
	dlq := sse(t, s.URL(), "deadletter.>")
	for i := 0; i < 4; i++ {
		postEvent(t, s.URL(), fmt.Sprint(i), "orders.created")
	}
	for i := 0; i < 4; i++ {
		select {
		case it := <-dlq:
			if it.Topic != "deadletter."+sub.ID {
				t.Fatalf("dead letter on %q", it.Topic)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 4 dead letters", i)
		}
	}
	// Each dead letter comes back to the subscription (topic ">") and is
	// skipped, not delivered: 3 attempts per event, no more.
	filtered := `eventkit_subscription_deliveries_total{outcome="filtered",subscription="` + sub.ID + `"}`
	waitFor(t, "the 4 dead letters skipped", func() bool { return metricValue(t, s.URL(), filtered) == 4 })
	if n := flaky.attempts.Load(); n != 12 {
		t.Fatalf("%d attempts, want 12 (3 for each of 4 events)", n)
	}
	dead := `eventkit_subscription_deliveries_total{outcome="dead_lettered",subscription="` + sub.ID + `"}`
	if v := metricValue(t, s.URL(), dead); v != 4 {
		t.Fatalf("%s = %v, want 4", dead, v)
	}
	// A deleted subscription's series go with it.
	if code, b := call(t, http.MethodDelete, s.URL()+"/subscriptions/"+sub.ID, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if m := metricsText(t, s.URL()); strings.Contains(m, sub.ID) {
		t.Fatalf("/metrics still has the deleted subscription:\n%s", grep(m, sub.ID))
	}
}

// TestSubscriptionsAPIUpdateAndSecrets: PUT replaces the filter; the access
// token and the headers are sent to the sink, and the token is never
// answered.
func TestSubscriptionsAPIUpdateAndSecrets(t *testing.T) {
	snk := newSink(t)
	bus := memory.New()
	s := start(t, hub.Config{SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}}, hub.WithBroker(bus, bus))
	sub := createSub(t, s.URL(), `{"protocol": "HTTP", "sink": "`+snk.srv.URL+`",
		"sinkcredential": {"credentialtype": "ACCESSTOKEN", "accesstoken": "s3cret"},
		"protocolsettings": {"headers": {"X-Tenant": "acme"}},
		"filters": [{"exact": {"type": "a"}}]}`)
	code, b := call(t, http.MethodGet, s.URL()+"/subscriptions/"+sub.ID, "")
	if code != http.StatusOK || bytes.Contains(b, []byte("s3cret")) || !bytes.Contains(b, []byte(`"credentialtype":"ACCESSTOKEN"`)) {
		t.Fatalf("GET: %d %s (the token must not be answered)", code, b)
	}
	postEvent(t, s.URL(), "a-1", "a")
	waitFor(t, "a-1", func() bool { return snk.has("a-1") })
	_, hdrs := snk.got()
	if hdrs[0].Get("Authorization") != "Bearer s3cret" || hdrs[0].Get("X-Tenant") != "acme" {
		t.Fatalf("delivery headers %v", hdrs[0])
	}
	code, b = call(t, http.MethodPut, s.URL()+"/subscriptions/"+sub.ID, `{"id": "`+sub.ID+`", "protocol": "HTTP",
		"sink": "`+snk.srv.URL+`", "filters": [{"any": [{"exact": {"type": "b"}}, {"sql": "type = 'c'"}]}]}`)
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"any"`)) {
		t.Fatalf("PUT: %d %s", code, b)
	}
	for _, p := range [][2]string{{"a-2", "a"}, {"b-1", "b"}, {"c-1", "c"}} {
		postEvent(t, s.URL(), p[0], p[1])
	}
	waitFor(t, "c-1", func() bool { return snk.has("c-1") })
	ids, hdrs := snk.got()
	if fmt.Sprint(ids) != "[a-1 b-1 c-1]" {
		t.Fatalf("the sink got %v, want [a-1 b-1 c-1]", ids)
	}
	if hdrs[2].Get("Authorization") != "" {
		t.Fatalf("the credential outlived the PUT that removed it: %v", hdrs[2])
	}
	if code, b := call(t, http.MethodPut, s.URL()+"/subscriptions/nope", `{"protocol": "HTTP", "sink": "`+snk.srv.URL+`"}`); code != http.StatusNotFound {
		t.Fatalf("PUT of an unknown id: %d %s", code, b)
	}
}

type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// TestSubscriptionsAPIRefusals: what the API refuses, each with its status,
// and the bad subscriptions with problem+json naming the field.
func TestSubscriptionsAPIRefusals(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{}, hub.WithBroker(bus, bus))
	base := s.URL()
	ok := `"protocol": "HTTP", "sink": "https://93.184.215.14/hook"`
	for _, tc := range []struct {
		body, field, detail string
	}{
		{`{"protocol": "MQTT3", "sink": "mqtt://x"}`, "protocol", "not supported"},
		{`{"protocol": "HTTP", "sink": "ftp://x/y"}`, "sink", "http or https"},
		{`{"protocol": "HTTP", "sink": "http://127.0.0.1:9/hook"}`, "sink", "loopback"},
		{`{"protocol": "HTTP", "sink": "http://169.254.169.254/latest"}`, "sink", "link-local"},
		{`{"protocol": "HTTP", "sink": "http://localhost:9/"}`, "sink", "allow_private_sinks"},
		{`{` + ok + `, "filters": [{"regex": {"type": "a.*"}}]}`, "filters[0]", "unsupported dialect"},
		{`{` + ok + `, "filters": [{"prefix": {"type": ""}}]}`, "filters[0].prefix.type", "empty"},
		{`{` + ok + `, "filters": [{"all": [{"sql": "type = "}]}]}`, "filters[0].all[0].sql", "does not parse"},
		{`{` + ok + `, "filters": {"prefix": {"type": "a"}}}`, "filters", "array"},
		{`{` + ok + `, "types": ["a", ""]}`, "types[1]", "empty"},
		{`{` + ok + `, "config": {"mode": "fast"}}`, "config.mode", "binary"},
		{`{` + ok + `, "config": {"concurrency": "1000"}}`, "config.concurrency", "1 to 64"},
		{`{` + ok + `, "config": {"topic": "a..b"}}`, "config.topic", ""},
		{`{` + ok + `, "config": {"colour": "red"}}`, "config.colour", "unknown key"},
		{`{` + ok + `, "config": {"backoff": ["1s"]}}`, "config.backoff", "string"},
		{`{` + ok + `, "filter": {"prefix": {"type": "a"}}}`, "filter", "unknown field"},
		{`{` + ok + `, "types": "a"}`, "types", "JSON"},
		{`{` + ok + `, "sinkcredential": {"credentialtype": "PLAIN"}}`, "sinkcredential.credentialtype", "ACCESSTOKEN"},
		{`{` + ok + `, "sinkcredential": {"credentialtype": "ACCESSTOKEN", "accesstoken": "env:HOME"}}`, "sinkcredential.accesstoken", "env:"},
		{`{` + ok + `, "protocolsettings": {"method": "PUT"}}`, "protocolsettings.method", "POST"},
		{`{` + ok + `, "protocolsettings": {"headers": {"ce-id": "x"}}}`, "protocolsettings.headers.ce-id", "set by the delivery"},
		{`{` + ok + `, "protocolsettings": {"headers": {"Bad Name": "x"}}}`, "protocolsettings.headers", "header name"},
	} {
		code, b := call(t, http.MethodPost, base+"/subscriptions", tc.body)
		var p problemBody
		if code != http.StatusBadRequest || json.Unmarshal(b, &p) != nil || p.Field != tc.field || !strings.Contains(p.Detail, tc.detail) {
			t.Errorf("POST %s: %d %s, want 400 naming %q with %q", tc.body, code, b, tc.field, tc.detail)
		}
	}
	for _, tc := range []struct {
		method, path, body, ctype string
		want                      int
	}{
		{http.MethodPost, "/subscriptions", `{` + ok + `}`, "text/plain", http.StatusUnsupportedMediaType},
		{http.MethodPost, "/subscriptions", `{"sink": "` + strings.Repeat("x", 70<<10) + `"}`, "application/json", http.StatusRequestEntityTooLarge},
		{http.MethodGet, "/subscriptions/nope", "", "", http.StatusNotFound},
		{http.MethodDelete, "/subscriptions/nope", "", "", http.StatusNotFound},
		{http.MethodPatch, "/subscriptions/nope", "", "", http.StatusMethodNotAllowed},
		{http.MethodGet, "/subscriptions/a/b", "", "", http.StatusNotFound},
		{http.MethodOptions, "/subscriptions", "", "", http.StatusNoContent},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, resp.Header.Get("Content-Type"))
		}
	}
	// The id of a PUT body must be the URL's.
	sub := createSub(t, base, `{`+ok+`}`)
	code, b := call(t, http.MethodPut, base+"/subscriptions/"+sub.ID, `{"id": "other", `+ok+`}`)
	if code != http.StatusBadRequest || !bytes.Contains(b, []byte(`"field":"id"`)) {
		t.Fatalf("PUT with another id: %d %s", code, b)
	}
}

// TestSubscriptionsAPILimit: beyond max_subscriptions, POST answers 409.
func TestSubscriptionsAPILimit(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{SubscriptionsAPI: hub.SubscriptionsAPIConfig{MaxSubscriptions: 2}}, hub.WithBroker(bus, bus))
	body := `{"protocol": "HTTP", "sink": "https://93.184.215.14/hook"}`
	createSub(t, s.URL(), body)
	createSub(t, s.URL(), body)
	if code, b := call(t, http.MethodPost, s.URL()+"/subscriptions", body); code != http.StatusConflict {
		t.Fatalf("third POST: %d %s, want 409", code, b)
	}
}

// TestSubscriptionsAPIScopes: reading needs the read scope, changing needs
// admin.
func TestSubscriptionsAPIScopes(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{Auth: hub.AuthConfig{Tokens: []hub.TokenConfig{
		{Token: "reader", Scopes: []string{hub.ScopeRead}},
		{Token: "admin", Scopes: []string{hub.ScopeAdmin}},
	}}}, hub.WithBroker(bus, bus))
	base := s.URL()
	body := `{"protocol": "HTTP", "sink": "https://93.184.215.14/hook"}`
	reader, admin := []string{"Authorization", "Bearer reader"}, []string{"Authorization", "Bearer admin"}
	if code, _ := call(t, http.MethodPost, base+"/subscriptions", body); code != http.StatusUnauthorized {
		t.Fatalf("POST without a token: %d, want 401", code)
	}
	if code, _ := call(t, http.MethodPost, base+"/subscriptions", body, reader...); code != http.StatusForbidden {
		t.Fatalf("POST with the read scope: %d, want 403", code)
	}
	sub := createSub(t, base, body, admin...)
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		b := ""
		if m == http.MethodPut {
			b = body
		}
		if code, _ := call(t, m, base+"/subscriptions/"+sub.ID, b, reader...); code != http.StatusForbidden {
			t.Fatalf("%s with the read scope: %d, want 403", m, code)
		}
	}
	if code, _ := call(t, http.MethodGet, base+"/subscriptions", "", admin...); code != http.StatusForbidden {
		t.Fatalf("GET with the admin scope only: %d, want 403", code)
	}
	for _, p := range []string{"/subscriptions", "/subscriptions/" + sub.ID, "/discovery"} {
		if code, b := call(t, http.MethodGet, base+p, "", reader...); code != http.StatusOK {
			t.Fatalf("GET %s with the read scope: %d %s", p, code, b)
		}
	}
	if code, _ := call(t, http.MethodDelete, base+"/subscriptions/"+sub.ID, "", admin...); code != http.StatusOK {
		t.Fatalf("DELETE with the admin scope: %d", code)
	}
}

// TestSubscriptionsAPISurvivesKill9: a subscription answered 201 is in the
// store of a server process killed with SIGKILL right after.
func TestSubscriptionsAPISurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := t.TempDir()
	c1 := startChild(t, dir)
	// A public sink (the child refuses private ones) that no event reaches.
	sub := createSub(t, c1.url, `{"protocol": "HTTP", "sink": "https://93.184.215.14/hook", "types": ["never.sent"]}`)
	if err := c1.Kill(); err != nil {
		t.Fatal(err)
	}
	c2 := startChild(t, dir)
	code, b := call(t, http.MethodGet, c2.url+"/subscriptions/"+sub.ID, "")
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"never.sent"`)) {
		t.Fatalf("after SIGKILL and restart: %d %s", code, b)
	}
	_ = c2.Signal(syscall.SIGTERM)
	if err := c2.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestSubscriptionsAPITopicChange: on the embedded broker, whose consumer
// group is bound to its pattern, a PUT may change config.topic.
func TestSubscriptionsAPITopicChange(t *testing.T) {
	snk := newSink(t)
	s := start(t, hub.Config{DataDir: t.TempDir(), SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}})
	sub := createSub(t, s.URL(), `{"protocol": "HTTP", "sink": "`+snk.srv.URL+`"}`)
	code, b := call(t, http.MethodPut, s.URL()+"/subscriptions/"+sub.ID, `{"protocol": "HTTP", "sink": "`+snk.srv.URL+`",
		"config": {"topic": "orders.>"}}`)
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"topic":"orders.\u003e"`)) {
		t.Fatalf("PUT: %d %s", code, b)
	}
	postEvent(t, s.URL(), "p-1", "payments.done")
	postEvent(t, s.URL(), "o-1", "orders.created")
	waitFor(t, "o-1", func() bool { return snk.has("o-1") })
	if ids, _ := snk.got(); fmt.Sprint(ids) != "[o-1]" {
		t.Fatalf("the sink got %v, want [o-1]", ids)
	}
}

// TestSubscriptionsAPIListsTheConfigurationFile: the subscriptions of the
// configuration file are listed, read-only.
func TestSubscriptionsAPIListsTheConfigurationFile(t *testing.T) {
	bus := memory.New()
	s := start(t, hub.Config{Subscriptions: []hub.SubscriptionConfig{
		{Name: "yaml-hook", Topic: "orders.>", URL: "https://93.184.215.14/hook", Token: "s3cret", MaxAttempts: 3},
	}}, hub.WithBroker(bus, bus))
	code, b := call(t, http.MethodGet, s.URL()+"/subscriptions/yaml-hook", "")
	var sub hub.APISubscription
	if code != http.StatusOK || json.Unmarshal(b, &sub) != nil || bytes.Contains(b, []byte("s3cret")) {
		t.Fatalf("GET: %d %s", code, b)
	}
	if sub.Config["from_configuration"] != "true" || sub.Config["topic"] != "orders.>" || sub.Config["max_attempts"] != "3" ||
		sub.SinkCredential == nil || sub.Sink != "https://93.184.215.14/hook" {
		t.Fatalf("GET: %s", b)
	}
	if code, b := call(t, http.MethodGet, s.URL()+"/subscriptions", ""); code != http.StatusOK || !bytes.Contains(b, []byte(`"id":"yaml-hook"`)) {
		t.Fatalf("GET /subscriptions: %d %s", code, b)
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		if code, b := call(t, m, s.URL()+"/subscriptions/yaml-hook", `{"protocol": "HTTP", "sink": "https://93.184.215.14/x"}`); code != http.StatusConflict {
			t.Fatalf("%s of a subscription of the configuration file: %d %s, want 409", m, code, b)
		}
	}
}
