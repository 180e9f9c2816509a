package hub_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
)

// TestMaxBytesRefusesNewEvents: at broker.max_bytes the server refuses new
// events with 507 problem+json instead of dropping acknowledged ones:
// every event answered 204 is still stored.
func TestMaxBytesRefusesNewEvents(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10}})
	accepted := map[string]bool{}
	refused := 0
	for i := 0; i < 2000 && refused < 3; i++ {
		id := strconv.Itoa(i)
		switch r := postEvent(t, s.URL(), id, "full.t"); r.StatusCode {
		case http.StatusNoContent:
			accepted[id] = true
		case http.StatusInsufficientStorage:
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("507 with Content-Type %q", ct)
			}
			refused++
		default:
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	if refused == 0 {
		t.Fatalf("%d events accepted into a 64 KiB stream, none refused", len(accepted))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := s.Subscriber().Subscribe(ctx, "full.>", eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for got := 0; got < len(accepted); got++ {
		select {
		case m := <-sub.Messages():
			if !accepted[m.Event.ID()] {
				t.Fatalf("stored event %s was not acknowledged", m.Event.ID())
			}
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("lost: %d of %d acknowledged events stored", got, len(accepted))
		}
	}
}

// TestStoreFullReportedAndRecovered: once the store refuses events,
// /healthz and /readyz answer 503 saying so; when room returns (here:
// retention expires the old events) they answer 200 again and events are
// accepted, without a restart.
func TestStoreFullReportedAndRecovered(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10, Retention: hub.Duration(2 * time.Second)}})
	for i := 0; ; i++ {
		r := postEvent(t, s.URL(), strconv.Itoa(i), "full.t")
		if r.StatusCode == http.StatusInsufficientStorage {
			break
		}
		if r.StatusCode != http.StatusNoContent || i > 5000 {
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := probe(t, s.URL()+path)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "event store full") {
			t.Errorf("%s with the store full: %d %s", path, code, body)
		}
	}
	waitFor(t, "ready again once retention freed room", func() bool {
		code, _ := probe(t, s.URL()+"/readyz")
		return code == http.StatusOK
	})
	if r := postEvent(t, s.URL(), "after", "full.t"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("after recovery: %d", r.StatusCode)
	}
}

func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
