package hub_test

import (
	"net"
	"strings"
	"testing"

	"github.com/eventkit/eventkit/hub"
	natsgo "github.com/nats-io/nats.go"
)

// TestEmbeddedListenerNeedsCredentials: broker.listen without
// broker.token is a configuration error; with it, a NATS client without
// the token is refused and one with it connects.
func TestEmbeddedListenerNeedsCredentials(t *testing.T) {
	if _, err := hub.ParseConfig([]byte("broker: {listen: '127.0.0.1:4999'}")); err == nil || !strings.Contains(err.Error(), "broker.token") {
		t.Fatalf("broker.listen without a token: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("HUB_TEST_NATS_TOKEN", "n4ts-t0k")
	start(t, hub.Config{DataDir: t.TempDir(), Broker: hub.BrokerConfig{Listen: addr, Token: "env:HUB_TEST_NATS_TOKEN"}})
	if nc, err := natsgo.Connect("nats://"+addr, natsgo.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a NATS client without the token connected to the embedded listener")
	}
	nc, err := natsgo.Connect("nats://"+addr, natsgo.Token("n4ts-t0k"))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()
}
