package natsserver_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestEmbeddedListenAndRestart(t *testing.T) {
	dir := t.TempDir()
	e, err := natsserver.Run(natsserver.WithStoreDir(dir), natsserver.WithListen("127.0.0.1", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	url := e.ClientURL()
	if url == "" {
		t.Fatal("ClientURL is empty for a listening server")
	}
	// Over TCP, as another process would.
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	if err := tr.Publish(ctx, "keep.x", eventkittest.NewEvent("kept")); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if e.ClientURL() != url {
		t.Fatalf("URL changed across restart: %s, then %s", url, e.ClientURL())
	}
	// The event survived the restart, and the TCP client reconnected.
	s, err := tr.Subscribe(ctx, "keep.>", eventkit.FromStart())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := take(t, s); m.Event.ID() != "kept" {
		t.Fatalf("got %q", m.Event.ID())
	}
}

func TestEmbeddedWithoutListener(t *testing.T) {
	e, err := natsserver.Run(natsserver.WithoutListener())
	if err != nil {
		t.Fatal(err)
	}
	dir := e.StoreDir()
	if e.ClientURL() != "" {
		t.Fatalf("ClientURL %q for a server without listener", e.ClientURL())
	}
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("in-process connection not connected")
	}
	nc.Close()
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := e.Connect(); err == nil {
		t.Fatal("Connect after Shutdown succeeded")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("temporary store directory %s kept after Shutdown", dir)
	}
}

// take returns the next message of s, failing the test after 30 s.
func take(t *testing.T, s eventkit.Subscription) *eventkit.Message {
	t.Helper()
	return eventkittest.Receive(t, s, 30*time.Second)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
