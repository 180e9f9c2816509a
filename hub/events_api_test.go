package hub_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/inspect"
)

// getEvents calls GET /events?query and returns its items and trailer.
func getEvents(t *testing.T, base, query string, hdr ...string) ([]inspect.Item, hub.Trailer) {
	t.Helper()
	code, b := call(t, http.MethodGet, base+"/events?"+query, "", hdr...)
	if code != http.StatusOK {
		t.Fatalf("GET /events?%s: %d %s", query, code, b)
	}
	var items []inspect.Item
	var tr hub.Trailer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"next"`)) {
			if err := json.Unmarshal(line, &tr); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var it inspect.Item
		if err := json.Unmarshal(line, &it); err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		items = append(items, it)
	}
	if !bytes.HasPrefix(b[bytes.LastIndexByte(b[:len(b)-1], '\n')+1:], []byte(`{"next"`)) {
		t.Fatalf("GET /events?%s does not end with the trailer: %s", query, b)
	}
	return items, tr
}

func itemIDs(items []inspect.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Event.ID()
	}
	return out
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// stored posts 5 orders.created (subjects o-0, o-1, o-0, ...) and 3
// orders.paid events and returns the server with everything it stored.
func storedServer(t *testing.T, cfg hub.Config) (*started, []inspect.Item) {
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s := start(t, cfg)
	for i, id := range []string{"c0", "c1", "c2", "p0", "c3", "p1", "c4", "p2"} {
		typ := "orders.created"
		if id[0] == 'p' {
			typ = "orders.paid"
		}
		subj := []string{"o-0", "o-1"}[i%2]
		if r := postEvent(t, s.URL(), id, typ, "ce-subject", subj, "ce-shard", string(id[1])); r.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", id, r.Status)
		}
	}
	all, tr := getEvents(t, s.URL(), "")
	wantIDs(t, "GET /events", itemIDs(all), []string{"c0", "c1", "c2", "p0", "c3", "p1", "c4", "p2"})
	if tr.More || tr.Next != all[len(all)-1].Position {
		t.Fatalf("trailer %+v, want next %s, no more", tr, all[len(all)-1].Position)
	}
	return s, all
}

func TestEventsAPI(t *testing.T) {
	s, all := storedServer(t, hub.Config{})
	base := s.URL()
	for i, it := range all {
		if it.Topic != it.Event.Type() || it.Stored.IsZero() || it.Event.Subject() == "" {
			t.Fatalf("item %d: %+v", i, it)
		}
		if i > 0 && (it.Stored.Before(all[i-1].Stored) || it.Position <= all[i-1].Position && len(it.Position) == len(all[i-1].Position)) {
			t.Fatalf("items out of store order: %+v after %+v", it, all[i-1])
		}
	}
	for _, tc := range []struct{ query, want string }{
		{"topic=orders.paid", "p0 p1 p2"},
		{"topic=orders.*&subject=o-0", "c0 c2 c3 c4"},
		{"type=orders.created&shard=1", "c1"},
		{"sql=" + url.QueryEscape("type = 'orders.paid' OR shard = '0'"), "c0 p0 p1 p2"},
		{"since=" + all[3].Stored.Format(time.RFC3339Nano), "p0 c3 p1 c4 p2"},
		{"until=" + all[3].Stored.Format(time.RFC3339Nano), "c0 c1 c2"},
		{"since=start&after=" + all[5].Position, "c4 p2"},
		{"topic=nothing.here", ""},
	} {
		items, _ := getEvents(t, base, tc.query)
		wantIDs(t, tc.query, itemIDs(items), strings.Fields(tc.want))
	}
	// Page by page.
	var paged []string
	q := "type=orders.created&limit=2"
	for range 5 {
		items, tr := getEvents(t, base, q)
		paged = append(paged, itemIDs(items)...)
		if !tr.More {
			break
		}
		q = "type=orders.created&limit=2&after=" + tr.Next
	}
	wantIDs(t, "pages", paged, []string{"c0", "c1", "c2", "c3", "c4"})

	// One event by its position.
	code, b := call(t, http.MethodGet, base+"/events/"+all[2].Position, "")
	var one inspect.Item
	if code != http.StatusOK || json.Unmarshal(b, &one) != nil || one.Event.ID() != "c2" || one.Position != all[2].Position || !one.Stored.Equal(all[2].Stored) {
		t.Fatalf("GET /events/%s: %d %s", all[2].Position, code, b)
	}
	for _, bad := range []string{"/events/99999", "/events/x"} {
		if code, b := call(t, http.MethodGet, base+bad, ""); code != http.StatusNotFound || !strings.Contains(string(b), `"status":404`) {
			t.Errorf("GET %s: %d %s, want a 404 problem", bad, code, b)
		}
	}
	for _, bad := range []string{"limit=0", "limit=10001", "since=yesterday", "after=x", "sql=type%20%3D%20%3D", "Bad-Name=x", "topic=a..b", "type=a&type=b"} {
		if code, b := call(t, http.MethodGet, base+"/events?"+bad, ""); code != http.StatusBadRequest || !strings.Contains(string(b), `"status":400`) {
			t.Errorf("GET /events?%s: %d %s, want a 400 problem", bad, code, b)
		}
	}
}

func TestEventsAPINeedsReadScope(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Auth: hub.AuthConfig{Tokens: []hub.TokenConfig{
		{Token: "reader-token-0123456789", Scopes: []string{hub.ScopeRead}},
		{Token: "publisher-token-0123456789", Scopes: []string{hub.ScopePublish}},
	}}})
	for _, path := range []string{"/events", "/events/1", "/replays"} {
		if code, _ := call(t, http.MethodGet, s.URL()+path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
		if code, _ := call(t, http.MethodGet, s.URL()+path, "", "Authorization", "Bearer publisher-token-0123456789"); code != http.StatusForbidden {
			t.Errorf("GET %s with the publish scope: %d, want 403", path, code)
		}
	}
	if code, b := call(t, http.MethodGet, s.URL()+"/events", "", "Authorization", "Bearer reader-token-0123456789"); code != http.StatusOK {
		t.Errorf("GET /events with the read scope: %d %s", code, b)
	}
	if code, _ := call(t, http.MethodPost, s.URL()+"/replays", `{"to_topic":"x"}`, "Authorization", "Bearer reader-token-0123456789"); code != http.StatusForbidden {
		t.Errorf("POST /replays with the read scope: %d, want 403", code)
	}
}
