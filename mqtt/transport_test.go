package mqtt_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dial(t *testing.T, opts ...ekmqtt.Option) *ekmqtt.Transport {
	t.Helper()
	return dialURL(t, testkit.MQTTURL(t), opts...)
}

// dialURL dials the broker at url; the transport is closed at the end of
// the test.
func dialURL(t *testing.T, url string, opts ...ekmqtt.Option) *ekmqtt.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := ekmqtt.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// MQTT keeps events for a group only while a member's session exists, has
// no nack and no attempt count, and gives no order across a shared
// subscription: none of those is claimed.
var features = eventkittest.Features{
	Wildcards:           true,
	ConsumerGroups:      true,
	GroupBalance:        true,
	ExtensionsAsStrings: true,
}

// TestTransport runs the conformance suite in binary and structured mode.
func TestTransport(t *testing.T) {
	f := features
	f.Restart = restartable
	testkit.TestModes(t, f, func(t *testing.T, ns string, mode eventkit.Mode) testkit.PubSub {
		return dial(t, ekmqtt.WithMode(mode))
	})
}

// TestPersistentSession checks that a subscription with a persistent
// session, closed and opened again with the same session id, gets the QoS 1
// and QoS 2 events published while it was away, and that an event it took
// and never acknowledged comes back too.
func TestPersistentSession(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run("QoS"+string('0'+qos), func(t *testing.T) {
			tr := dial(t, ekmqtt.WithQoS(qos), ekmqtt.WithSessionExpiry(10*time.Second))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ns := eventkittest.UniqueName("eksess")
			tp, session := ns+".orders", ns+"-session"
			opt := eventkit.WithTransportOption(ekmqtt.Session(session))
			s1, err := tr.Subscribe(ctx, tp, opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Publish(ctx, tp, eventkittest.NewEvent("before-1"), eventkittest.NewEvent("before-2")); err != nil {
				t.Fatal(err)
			}
			first := <-s1.Messages()
			if first.Event.ID() != "before-1" {
				t.Fatalf("got %q", first.Event.ID())
			}
			if err := first.Ack(); err != nil {
				t.Fatal(err)
			}
			// before-2 is delivered to s1 (buffered) and never acknowledged.
			deadline := time.After(10 * time.Second)
			for taken := false; !taken; {
				select {
				case m := <-s1.Messages():
					taken = m.Event.ID() == "before-2"
				case <-deadline:
					t.Fatal("before-2 not delivered")
				}
			}
			// Acks travel asynchronously (every 10ms, in order); Close
			// waits 50ms for the last ones. Leave them time even on a
			// loaded machine, since an ack lost at Close means a duplicate,
			// which this test would report.
			time.Sleep(300 * time.Millisecond)
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			away := []string{"away-1", "away-2", "away-3"}
			for _, id := range away {
				if err := tr.Publish(ctx, tp, eventkittest.NewEvent(id)); err != nil {
					t.Fatal(err)
				}
			}
			s2, err := tr.Subscribe(ctx, tp, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			receiveIDs(t, ctx, s2, "after resuming the session", map[string]bool{"before-2": true, "away-1": true, "away-2": true, "away-3": true})
		})
	}
}

// pahoConnect connects a plain paho client to the test broker with
// connect, and returns it with the broker's CONNACK.
func pahoConnect(t *testing.T, ctx context.Context, connect *paho.Connect) (*paho.Client, *paho.Connack) {
	t.Helper()
	u, err := url.Parse(testkit.MQTTURL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: connect.ClientID, Conn: conn})
	ack, err := c.Connect(ctx, connect)
	if err != nil {
		t.Fatal(err)
	}
	return c, ack
}

// receiveIDs receives and acks messages from s until it got each event id
// of want, and fails t on another id, on the end of s or when ctx ends.
func receiveIDs(t *testing.T, ctx context.Context, s eventkit.Subscription, when string, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for len(got) < len(want) {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				t.Fatalf("%s: subscription ended", when)
			}
			if !want[m.Event.ID()] {
				t.Fatalf("unexpected %q %s", m.Event.ID(), when)
			}
			got[m.Event.ID()] = true
			_ = m.Ack()
		case <-ctx.Done():
			t.Fatalf("%s got %v, want %v", when, got, want)
		}
	}
}

// restartable is the restart feature: transports on a mosquitto of the
// test's own, configured as scripts/services.sh configures the shared one.
func restartable(t *testing.T) (eventkittest.Factory, func()) {
	srv := eventkittest.StartServerProcess(t, eventkittest.ServerCommand{Program: "mosquitto", Args: func(port int, dir string) []string {
		conf := filepath.Join(dir, "mosquitto.conf")
		text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 100000\n", port, dir)
		if os.Geteuid() == 0 {
			text += "user root\n" // or mosquitto drops to a user that cannot write dir
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"-c", conf}
	}})
	return func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		tr := dialURL(t, "mqtt://"+srv.Addr())
		return tr, tr
	}, srv.Restart
}
