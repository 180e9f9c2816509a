package mqtt_test

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
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
	s, err := tr.Subscribe(ctx, tp, eventkit.WithTransportOption(ekmqtt.Session(session)))
	if err != nil {
		t.Fatal(err)
	}
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

	u, err := url.Parse(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	other := paho.NewClient(paho.ClientConfig{ClientID: session, Conn: conn})
	expiry := uint32(30)
	ack, err := other.Connect(ctx, &paho.Connect{ClientID: session, CleanStart: false, KeepAlive: 10,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatal(err)
	}
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
	got := map[string]bool{}
	for len(got) < len(want) {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				t.Fatal("subscription ended")
			}
			if !want[m.Event.ID()] {
				t.Fatalf("unexpected %q", m.Event.ID())
			}
			got[m.Event.ID()] = true
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("after the takeover got %v, want %v", got, want)
		}
	}
	if !strings.Contains(logs.String(), "connection lost") {
		t.Fatalf("the subscription's connection was not dropped and re-established; log:\n%s", logs.String())
	}
}
