package hub_test

import (
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
)

// TestDiscardOldCountsAndReportsLoss: with broker.discard old, the events
// dropped to make room are counted, logged, and reported to the
// subscriptions that had not delivered them, and only to those: every
// acknowledged event is either still stored or counted as dropped.
func TestDiscardOldCountsAndReportsLoss(t *testing.T) {
	down := newWebhook(t, 0, http.StatusServiceUnavailable) // never delivers
	ok := newWebhook(t, 0, 0)
	logs := &eventkittest.SyncBuffer{}
	slow := hub.Duration(time.Hour) // the failed delivery waits, its event undelivered
	s := start(t, hub.Config{
		DataDir: t.TempDir(),
		Broker:  hub.BrokerConfig{MaxBytes: 64 << 10, Discard: "old"},
		Subscriptions: []hub.SubscriptionConfig{
			{Name: "down", Topic: "full.>", URL: down.srv.URL, Backoff: slow, MaxBackoff: slow, MaxAttempts: 100},
			{Name: "elsewhere", Topic: "other.>", URL: ok.srv.URL},
		},
		SubscriptionsAPI: hub.SubscriptionsAPIConfig{AllowPrivateSinks: true},
	}, hub.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	// A subscription of the Subscriptions API is told the same.
	api := createSub(t, s.URL(), `{"protocol": "HTTP", "sink": "`+down.srv.URL+`",
		"config": {"topic": "full.>", "backoff": "1h", "max_backoff": "1h", "max_attempts": 100}}`)
	const n = 1000 // about 200 KiB stored: three times the bound
	for i := range n {
		if r := postEvent(t, s.URL(), strconv.Itoa(i), "full.t"); r.StatusCode != http.StatusNoContent {
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	sub, ctx := storedFromStart(t, s, "full.>")
	stored := 0
	for stored < n {
		select {
		case m := <-sub.Messages():
			_ = m.Ack()
			stored++
			continue
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
		break
	}
	discarded := metricValue(t, s.URL(), `eventkit_broker_discarded_total`)
	if stored == n || discarded == 0 {
		t.Fatalf("%d of %d events still stored, %v counted dropped; want some dropped and counted", stored, n, discarded)
	}
	if got := float64(stored) + discarded; got != n {
		t.Errorf("stored %d + dropped %v = %v; want the %d acknowledged", stored, discarded, got, n)
	}
	for _, name := range []string{"down", api.ID} {
		if lost := metricValue(t, s.URL(), `eventkit_subscription_lost_total{subscription="`+name+`"}`); lost != discarded {
			t.Errorf("subscription %s lost %v; want the %v dropped (it delivered none)", name, lost, discarded)
		}
	}
	if lost := metricValue(t, s.URL(), `eventkit_subscription_lost_total{subscription="elsewhere"}`); lost != 0 {
		t.Errorf("subscription elsewhere (other.>) lost %v; want 0", lost)
	}
	var logged float64
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "subscription=down") && strings.Contains(l, "lost") {
			v := regexp.MustCompile(`events=(\d+)`).FindStringSubmatch(l)
			if v == nil {
				t.Fatalf("log line names no count: %s", l)
			}
			c, _ := strconv.Atoi(v[1])
			logged += float64(c)
		}
		if strings.Contains(l, "subscription=elsewhere") && strings.Contains(l, "lost") {
			t.Errorf("loss logged for a subscription that lost nothing: %s", l)
		}
	}
	if logged != discarded {
		t.Errorf("the log names %v events lost by subscription down; want %v:\n%s", logged, discarded, logs.String())
	}
}

// TestDiscardOldDropsNothingForARequestThatCannotFit: with discard old, a
// request larger than the whole store is refused (507) without dropping
// the stored events for it.
func TestDiscardOldDropsNothingForARequestThatCannotFit(t *testing.T) {
	s := start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{MaxBytes: 64 << 10, Discard: "old"}})
	const n = 10
	for i := range n {
		if r := postEvent(t, s.URL(), strconv.Itoa(i), "fit.t"); r.StatusCode != http.StatusNoContent {
			t.Fatalf("event %d: status %d", i, r.StatusCode)
		}
	}
	if code := <-postAsync(s.URL(), 70<<10); code != http.StatusInsufficientStorage {
		t.Fatalf("a request larger than the store: %d, want 507", code)
	}
	if d := metricValue(t, s.URL(), "eventkit_broker_discarded_total"); d != 0 {
		t.Fatalf("%v events dropped for a request that cannot fit", d)
	}
	sub, ctx := storedFromStart(t, s, "fit.>")
	for got := 0; got < n; got++ {
		select {
		case m := <-sub.Messages():
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("%d of the %d stored events left", got, n)
		}
	}
}
