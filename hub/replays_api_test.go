package hub_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/hub"
)

// postReplay posts a replay and returns it as answered (201).
func postReplay(t *testing.T, base, body string) hub.Replay {
	t.Helper()
	code, b := call(t, http.MethodPost, base+"/replays", body)
	var r hub.Replay
	if code != http.StatusCreated || json.Unmarshal(b, &r) != nil || r.ID == "" || r.State != hub.ReplayRunning {
		t.Fatalf("POST /replays %s: %d %s", body, code, b)
	}
	return r
}

func getReplay(t *testing.T, base, id string) hub.Replay {
	t.Helper()
	code, b := call(t, http.MethodGet, base+"/replays/"+id, "")
	var r hub.Replay
	if code != http.StatusOK || json.Unmarshal(b, &r) != nil {
		t.Fatalf("GET /replays/%s: %d %s", id, code, b)
	}
	return r
}

// waitReplay waits for the replay to end and returns it.
func waitReplay(t *testing.T, base, id string) hub.Replay {
	t.Helper()
	var r hub.Replay
	waitFor(t, "replay "+id+" ended", func() bool {
		r = getReplay(t, base, id)
		return r.State != hub.ReplayRunning
	})
	return r
}

func TestReplayToTopic(t *testing.T) {
	s, all := storedServer(t, hub.Config{})
	r := postReplay(t, s.URL(), `{"topic": "orders.*", "filter": {"type": "orders.created"}, "to_topic": "again.orders"}`)
	r = waitReplay(t, s.URL(), r.ID)
	if r.State != hub.ReplayDone || r.Done != 5 || r.Total == nil || *r.Total != 5 || r.Position != all[6].Position || r.Error != "" {
		t.Fatalf("replay ended as %+v", r)
	}
	items, _ := getEvents(t, s.URL(), "topic=again.orders")
	wantIDs(t, "replayed", itemIDs(items), []string{"c0", "c1", "c2", "c3", "c4"})
	if items[0].Event.Subject() != "o-0" || items[0].Event.Extensions()["shard"] != "0" {
		t.Fatalf("replayed event changed: %v", items[0].Event)
	}
	code, b := call(t, http.MethodGet, s.URL()+"/replays", "")
	var list []hub.Replay
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("GET /replays: %d %s", code, b)
	}
}

func TestReplayToURL(t *testing.T) {
	snk := newSink(t)
	s, _ := storedServer(t, hub.Config{SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true}})
	r := postReplay(t, s.URL(), `{"sql": "type = 'orders.paid'", "to_url": "`+snk.srv.URL+`", "rate": 1000}`)
	if r = waitReplay(t, s.URL(), r.ID); r.State != hub.ReplayDone || r.Done != 3 {
		t.Fatalf("replay ended as %+v", r)
	}
	ids, _ := snk.got()
	wantIDs(t, "the sink got", ids, []string{"p0", "p1", "p2"})
}

func TestReplayRefused(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir()})
	for _, body := range []string{
		`{}`,
		`{"to_topic": "a", "to_url": "https://example.com"}`,
		`{"to_topic": "a..b"}`,
		`{"to_url": "http://127.0.0.1:1/"}`, // http and private: not allowed by default
		`{"to_url": "ftp://example.com/"}`,
		`{"to_topic": "a", "rate": -1}`,
		`{"to_topic": "a", "since": "yesterday"}`,
		`{"to_topic": "a", "sql": "type = ="}`,
		`{"to_topic": "a", "filter": {"limit": "3"}}`,
		`{"to_topic": "a", "unknown": 1}`,
		`{"to_topic": "a", "filter": {"x": "` + strings.Repeat("y", 70<<10) + `"}}`,
	} {
		if code, b := call(t, http.MethodPost, s.URL()+"/replays", body); code != http.StatusBadRequest || !strings.Contains(string(b), `"status":400`) {
			t.Errorf("POST /replays %.80s: %d %s, want a 400 problem", body, code, b)
		}
	}
	if code, _ := call(t, http.MethodGet, s.URL()+"/replays/nope", ""); code != http.StatusNotFound {
		t.Errorf("GET /replays/nope: %d, want 404", code)
	}
	if code, _ := call(t, http.MethodPut, s.URL()+"/replays", "{}"); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /replays: %d, want 405", code)
	}
}

// TestReplayCancel: DELETE stops a slow replay, which says so and
// publishes nothing more.
func TestReplayCancel(t *testing.T) {
	s, _ := storedServer(t, hub.Config{})
	r := postReplay(t, s.URL(), `{"to_topic": "slow", "rate": 1}`)
	waitFor(t, "a first event replayed", func() bool { return getReplay(t, s.URL(), r.ID).Done >= 1 })
	code, b := call(t, http.MethodDelete, s.URL()+"/replays/"+r.ID, "")
	if err := json.Unmarshal(b, &r); code != http.StatusOK || err != nil || r.State != hub.ReplayCanceled || r.Done >= 8 {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	items, _ := getEvents(t, s.URL(), "topic=slow")
	if int64(len(items)) != r.Done {
		t.Fatalf("%d events replayed, the replay says %d", len(items), r.Done)
	}
}

// TestReplayResumesAfterRestart: a replay running when the server stops
// goes on after the restart from its checkpoint, and ends with every
// event of its range replayed (the batch in flight at the stop at most
// twice).
func TestReplayResumesAfterRestart(t *testing.T) {
	cfg := hub.Config{DataDir: t.TempDir()}
	s, _ := storedServer(t, cfg)
	r := postReplay(t, s.URL(), `{"topic": "orders.>", "to_topic": "resumed", "rate": 4}`)
	waitFor(t, "two events replayed", func() bool { return getReplay(t, s.URL(), r.ID).Done >= 2 })
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, cfg)
	got := waitReplay(t, s2.URL(), r.ID)
	if got.State != hub.ReplayDone || got.Done != 8 {
		t.Fatalf("after the restart the replay ended as %+v", got)
	}
	items, _ := getEvents(t, s2.URL(), "topic=resumed")
	ids := itemIDs(items)
	want := []string{"c0", "c1", "c2", "p0", "c3", "p1", "c4", "p2"}
	if len(ids) > len(want)+1 || !slices.Equal(slices.Compact(slices.Clone(ids)), want) {
		t.Fatalf("replayed %v, want %v (one event at most twice, in a row)", ids, want)
	}
	t.Logf("replayed %d events for %s", len(ids), strconv.Itoa(len(want)))
}
