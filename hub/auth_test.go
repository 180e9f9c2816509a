package hub_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/memory"
)

// get sends a GET to base+path with the headers hdr (name, value, …),
// signed under secret when it is not nil, and returns the status and the
// Content-Type.
func get(t *testing.T, base, path string, secret []byte, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if secret != nil {
		if err := cehttp.SignRequest(req, nil, "k", secret); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		var p cehttp.Problem
		if json.Unmarshal(b, &p) != nil || p.Status != resp.StatusCode {
			t.Errorf("GET %s: %d answered %q, not a problem", path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header.Get("Content-Type")
}

// TestEveryRouteBehindAuth: with only an HMAC secret, the stream and the
// metrics need a signature; with a token, the metrics need it; an empty
// bearer token is 401; scoped tokens are held to their scopes; errors
// (stream ones, unknown routes) are problem+json. The health probes stay
// open.
func TestEveryRouteBehindAuth(t *testing.T) {
	secret := []byte("hmac-key")
	cfg, err := hub.ParseConfig([]byte(`
auth:
  hmac_secret: hmac-key
`))
	if err != nil {
		t.Fatal(err)
	}
	bus := memory.New()
	s := start(t, cfg, hub.WithBroker(bus, bus))
	for _, path := range []string{"/events/stream", "/metrics"} {
		if code, _ := get(t, s.URL(), path, nil); code != http.StatusUnauthorized {
			t.Errorf("HMAC only: unsigned GET %s: %d, want 401", path, code)
		}
	}
	if code, _ := get(t, s.URL(), "/metrics", secret); code != http.StatusOK {
		t.Errorf("HMAC only: signed GET /metrics: %d", code)
	}
	if code, _ := get(t, s.URL(), "/events/stream?topic=a.%3E.b", secret); code != http.StatusBadRequest {
		t.Errorf("signed GET with a bad pattern: %d, want 400", code)
	}
	if code, _ := get(t, s.URL(), "/healthz", nil); code != http.StatusOK {
		t.Errorf("GET /healthz: %d", code)
	}

	cfg, err = hub.ParseConfig([]byte(`
auth:
  token: all
  tokens:
    - token: pub
      scopes: [publish]
    - token: reader
      scopes: [read]
`))
	if err != nil {
		t.Fatal(err)
	}
	bus2 := memory.New()
	s2 := start(t, cfg, hub.WithBroker(bus2, bus2))
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer ", http.StatusUnauthorized},
		{"/metrics", "Bearer reader", http.StatusForbidden},
		{"/metrics", "Bearer all", http.StatusOK},
		{"/events/stream", "Bearer ", http.StatusUnauthorized},
		{"/events/stream", "Bearer pub", http.StatusForbidden},
		{"/nowhere", "Bearer all", http.StatusNotFound},
	} {
		if code, _ := get(t, s2.URL(), c.path, nil, "Authorization", c.auth); code != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.auth, code, c.want)
		}
	}
	if r := postEvent(t, s2.URL(), "1", "a.b", "Authorization", "Bearer reader"); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a read-only token: %d, want 403", r.StatusCode)
	}
	if r := postEvent(t, s2.URL(), "1", "a.b", "Authorization", "Bearer pub"); r.StatusCode != http.StatusNoContent {
		t.Errorf("POST with a publish token: %d, want 204", r.StatusCode)
	}
	items := sse(t, s2.URL(), "a.>", "Authorization", "Bearer reader")
	if r := postEvent(t, s2.URL(), "2", "a.b", "Authorization", "Bearer all"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	if it := <-items; !strings.Contains(string(it.Event), `"id":"2"`) {
		t.Fatalf("stream item %s", it.Event)
	}
}

// TestHubToHubSignedDelivery: one eventkit verifies another's deliveries:
// a subscription with hmac_secret posts to a second server that requires
// signatures under the same secret, which stores the event; under another
// secret the delivery is refused (and dead-lettered, not counted
// delivered).
func TestHubToHubSignedDelivery(t *testing.T) {
	busB := memory.New()
	b := start(t, hub.Config{Auth: hub.AuthConfig{HMACSecret: "shared"}}, hub.WithBroker(busB, busB))
	got, err := busB.Subscribe(t.Context(), "orders.>")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	busA := memory.New()
	a := start(t, hub.Config{Subscriptions: []hub.SubscriptionConfig{
		{Name: "tob", Topic: "orders.>", URL: b.URL() + "/events", HMACSecret: "shared"},
		{Name: "wrong", Topic: "orders.>", URL: b.URL() + "/events", HMACSecret: "other", MaxAttempts: 1},
	}}, hub.WithBroker(busA, busA))
	dlq, err := busA.Subscribe(t.Context(), "deadletter.wrong")
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	if r := postEvent(t, a.URL(), "h2h", "orders.created"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST to A: %d", r.StatusCode)
	}
	select {
	case m := <-got.Messages():
		if m.Event.ID() != "h2h" {
			t.Fatalf("B stored %q", m.Event.ID())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("B did not store the signed delivery")
	}
	select {
	case m := <-dlq.Messages():
		if !strings.Contains(fmt.Sprint(m.Event.Extensions()["dlqerror"]), "403") {
			t.Errorf("dead letter for the wrong secret: %v", m.Event.Extensions()["dlqerror"])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery under the wrong secret was not dead-lettered")
	}
}
