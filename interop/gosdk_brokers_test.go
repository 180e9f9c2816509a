package interop

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	cemqtt "github.com/cloudevents/sdk-go/protocol/mqtt_paho/v2"
	cenats "github.com/cloudevents/sdk-go/protocol/nats/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/protocol"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekmqtt "github.com/eventkit/eventkit/mqtt"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsConn connects to the shared NATS server (EVENTKIT_NATS_URL).
func natsConn(t *testing.T) *nats.Conn {
	t.Helper()
	addr := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	nc, err := nats.Connect(addr)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_NATS_URL", addr, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// natsTransport is an eventkit NATS transport in mode on a stream of its
// own for subjects ns.>, deleted at the end of the test.
func natsTransport(t *testing.T, nc *nats.Conn, ns string, mode eventkit.Mode) *eknats.Transport {
	t.Helper()
	tr, err := eknats.New(nc, eknats.WithMode(mode),
		eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, Storage: jetstream.MemoryStorage}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, ns); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", ns, err)
		}
	})
	return tr
}

// The Go SDK's NATS binding writes structured mode only, as version 1.0.2
// of the NATS protocol binding prescribes (the payload is the JSON format,
// no headers); eventkit's NATS subscriber reads it. The SDK reads
// eventkit's structured mode; it cannot read binary mode (headers), which
// it does not implement (docs/interop.md).
func TestInteropGoSDKNATS(t *testing.T) {
	nc := natsConn(t)
	ctx := context.Background()

	t.Run("sdk-to-eventkit", func(t *testing.T) {
		ns := eventkittest.UniqueName("interop")
		tr := natsTransport(t, nc, ns, eventkit.Binary)
		sub := subscribe(t, tr, ns+".>")
		sender, err := cenats.NewSenderFromConn(nc, ns+".go")
		if err != nil {
			t.Fatal(err)
		}
		want := testEvents("go-nats")
		for _, e := range want {
			if err := sender.Send(ctx, binding.ToMessage(&e)); !protocol.IsACK(err) {
				t.Fatalf("send %s: %v", e.ID(), err)
			}
		}
		checkEvents(t, "Go SDK NATS → eventkit", modeComparison("structured"), want, receive(t, sub, len(want)))
	})

	t.Run("eventkit-to-sdk", func(t *testing.T) {
		ns := eventkittest.UniqueName("interop")
		tr := natsTransport(t, nc, ns, eventkit.Structured)
		col := &collector{}
		s, err := nc.Subscribe(ns+".>", func(m *nats.Msg) {
			e, err := binding.ToEvent(ctx, cenats.NewMessage(m))
			if err != nil {
				col.fail(err)
				return
			}
			col.add(describe(*e))
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Unsubscribe() })
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		want := testEvents("ek-nats")
		publish(t, tr, ns+".ek", want...)
		checkEvents(t, "eventkit NATS structured → Go SDK", modeComparison("structured"), want, col.wait(t, len(want), "the SDK's NATS subscription"))
	})
}

// mqttURL is the shared Mosquitto (EVENTKIT_MQTT_URL).
func mqttURL(t *testing.T) *url.URL {
	t.Helper()
	addr := testkit.MQTTURL(t)
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pahoClient is an MQTT 5 client of the Go SDK's kind (paho.golang's
// paho.Client), connected; onPublish receives what its subscriptions get.
func pahoClient(t *testing.T, u *url.URL, onPublish func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_MQTT_URL", u.String(), err)
	}
	cfg := paho.ClientConfig{Conn: conn, ClientID: eventkittest.UniqueName("interop-")}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			onPublish(p.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: cfg.ClientID}); err != nil {
		t.Fatalf("MQTT connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// mqttTransport is an eventkit MQTT transport in mode.
func mqttTransport(t *testing.T, u *url.URL, mode eventkit.Mode) *ekmqtt.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tr, err := ekmqtt.Dial(ctx, u.String(), ekmqtt.WithMode(mode), ekmqtt.WithLogger(quiet))
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_MQTT_URL", u.String(), err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// The Go SDK's MQTT binding (mqtt_paho) in both modes. Its binary mode
// names each user property "ce-" + attribute, where the MQTT protocol
// binding names it after the attribute alone; eventkit reads both styles,
// and writes the binding's. So the SDK reads eventkit's structured mode
// but not its binary mode (docs/interop.md).
func TestInteropGoSDKMQTT(t *testing.T) {
	u := mqttURL(t)
	ctx := context.Background()

	for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
		t.Run("sdk-to-eventkit/"+mode.String(), func(t *testing.T) {
			ns := eventkittest.UniqueName("interop")
			tr := mqttTransport(t, u, eventkit.Binary)
			sub := subscribe(t, tr, ns+".>")
			p, err := cemqtt.New(ctx, &paho.ClientConfig{Conn: dialMQTT(t, u)},
				cemqtt.WithPublish(&paho.Publish{Topic: ns + "/go", QoS: 1}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(ctx) })
			sctx := binding.WithForceBinary(ctx)
			if mode == eventkit.Structured {
				sctx = binding.WithForceStructured(ctx)
			}
			want := testEvents("go-mqtt-" + mode.String())
			for _, e := range want {
				if err := p.Send(sctx, binding.ToMessage(&e)); !protocol.IsACK(err) {
					t.Fatalf("send %s: %v", e.ID(), err)
				}
			}
			checkEvents(t, "Go SDK MQTT "+mode.String()+" → eventkit", modeComparison(mode.String()), want, receive(t, sub, len(want)))
		})
	}

	t.Run("eventkit-to-sdk/structured", func(t *testing.T) {
		ns := eventkittest.UniqueName("interop")
		tr := mqttTransport(t, u, eventkit.Structured)
		col := &collector{}
		c := pahoClient(t, u, func(p *paho.Publish) {
			e, err := binding.ToEvent(ctx, cemqtt.NewMessage(p))
			if err != nil {
				col.fail(err)
				return
			}
			col.add(describe(*e))
		})
		sctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if _, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ns + "/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		want := testEvents("ek-mqtt")
		publish(t, tr, ns+".ek", want...)
		checkEvents(t, "eventkit MQTT structured → Go SDK", modeComparison("structured"), want, col.wait(t, len(want), "the SDK's MQTT subscription"))
	})
}

func dialMQTT(t *testing.T, u *url.URL) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_MQTT_URL", u.String(), err)
	}
	return conn
}

// The Go SDK's NATS messages (the JSON format as the payload, no headers)
// decode with eventkit's NATS binding; this part needs no server.
func TestInteropGoSDKNATSDecode(t *testing.T) {
	want := testEvents("go-nats-decode")
	var got []described
	for _, e := range want {
		var buf bytes.Buffer
		if err := cenats.WriteMsg(context.Background(), binding.ToMessage(&e), &buf); err != nil {
			t.Fatal(err)
		}
		d, err := eknats.DecodeMsg(nil, buf.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", e.ID(), err)
		}
		got = append(got, describe(d))
	}
	checkEvents(t, "Go SDK NATS message → eknats.DecodeMsg", modeComparison("structured"), want, got)
}
