package nats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Short ack wait and extension, so that RedeliverUnacked is quick to test:
// an unsettled message comes back after about ackWait+ackExtension.
const (
	testAckWait      = 5 * time.Second
	testAckExtension = 5 * time.Second
)

var features = func() eventkittest.Features {
	f := testkit.DurableFeatures()
	f.AckTimeout = testAckWait + testAckExtension + testAckWait
	f.ExtensionsAsStrings = true
	f.SeekMovesMembers = true
	return f
}()

// factory makes transports on connections from connect, each test with its
// own stream "<namespace>" for "<namespace>.>", deleted at the end.
func factory(connect func(t *testing.T) *nats.Conn, opts ...eknats.Option) eventkittest.Factory {
	return func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		nc := connect(t)
		t.Cleanup(nc.Close)
		all := append([]eknats.Option{
			eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, Storage: jetstream.FileStorage}),
			eknats.WithAckWait(testAckWait),
			eknats.WithAckExtension(testAckExtension),
		}, opts...)
		tr, err := eknats.New(nc, all...)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { deleteStream(t, nc, ns) })
		return tr, tr
	}
}

func deleteStream(t *testing.T, nc *nats.Conn, name string) {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("jetstream: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("delete stream %s: %v", name, err)
	}
}

// embeddedStream connects to the embedded server and names a stream of its
// own, prefix then a unique suffix, deleted (if made) when t ends, before
// the connection is closed.
func embeddedStream(t *testing.T, prefix string) (*nats.Conn, string) {
	t.Helper()
	nc := connectEmbedded(t)
	t.Cleanup(nc.Close)
	ns := eventkittest.UniqueName(prefix)
	t.Cleanup(func() { deleteStream(t, nc, ns) })
	return nc, ns
}

func connectEmbedded(t *testing.T) *nats.Conn {
	nc, err := embedded(t).Connect()
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return nc
}

func connectServer(t *testing.T) *nats.Conn {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_NATS_URL", url, err)
	}
	return nc
}

func TestTransportEmbedded(t *testing.T) {
	f := features
	f.Restart = restartable
	eventkittest.TestTransport(t, factory(connectEmbedded), f)
}

// restartable is the restart feature: transports on an embedded server of
// the test's own, which restart restarts on the same store directory.
func restartable(t *testing.T) (eventkittest.Factory, func()) {
	emb, _ := ownServer(t)
	connect := func(t *testing.T) *nats.Conn {
		nc, err := emb.Connect()
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		return nc
	}
	restart := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := emb.Restart(ctx); err != nil {
			t.Fatalf("Restart: %v", err)
		}
	}
	return factory(connect), restart
}

func TestTransportServer(t *testing.T) {
	nc := connectServer(t) // skips (or fails under CI) early when absent
	f := features
	// The server's max_payload bounds the whole message (1 MiB by
	// default): claim the data size that fits beside the headers.
	f.MaxPayload = int(nc.MaxPayload()) - 16<<10
	nc.Close()
	eventkittest.TestTransport(t, factory(connectServer), f)
}
