package mqtt_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
)

// TestSessionTakeoverReconnect makes the broker drop a subscription's
// connection: another client connects with the same client id and takes
// the session over (the broker must disconnect the first). The transport
// reconnects by itself, takes the session back, and receives every event
// published after the takeover.
func TestSessionTakeoverReconnect(t *testing.T) {
	var logs eventkittest.SyncBuffer
	tr := dial(t, ekmqtt.WithSessionExpiry(30*time.Second), ekmqtt.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := eventkittest.UniqueName("ektake")
	tp, session := ns+".orders", ns+"-session"
	s := testkit.Subscribe(t, ctx, tr, tp, eventkit.WithTransportOption(ekmqtt.Session(session)))
	defer s.Close()
	if err := tr.Publish(ctx, tp, eventkittest.NewEvent("before")); err != nil {
		t.Fatal(err)
	}
	if m := <-s.Messages(); m.Event.ID() != "before" {
		t.Fatalf("got %q", m.Event.ID())
	} else {
		_ = m.Ack()
	}
	// Let the ack reach the broker (sent every 10ms), or the resumed
	// session rightly delivers "before" again.
	time.Sleep(300 * time.Millisecond)

	expiry := uint32(30)
	other, ack := pahoConnect(t, ctx, &paho.Connect{ClientID: session, CleanStart: false, KeepAlive: 10,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if !ack.SessionPresent {
		t.Fatalf("the second client did not take the session over (no session present)")
	}
	if err := other.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	<-other.Done()

	want := map[string]bool{"after-1": true, "after-2": true, "after-3": true}
	for id := range want {
		if err := tr.Publish(ctx, tp, eventkittest.NewEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	receiveIDs(t, ctx, s, "after the takeover", want)
	if !strings.Contains(logs.String(), "connection lost") {
		t.Fatalf("the subscription's connection was not dropped and re-established; log:\n%s", logs.String())
	}
}
