package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	eknats "github.com/eventkit/eventkit/nats"
)

// A Subscribe issued while JetStream does not answer waits for it until
// the caller's ctx ends (not for the setup timeout), then fails with an
// error that says so and wraps both ctx's error and the last attempt's.
func TestSubscribeWaitsForJetStreamUntilCtxEnds(t *testing.T) {
	srv, err := server.NewServer(&server.Options{DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect("nats://in-process", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// JetStream is off on this server: every API call meets no responders.
	tr, err := eknats.New(nc, eknats.WithSetupTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	sub, err := tr.Subscribe(ctx, "nojs.x")
	if err == nil {
		_ = sub.Close()
		t.Fatal("Subscribe succeeded without JetStream")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
	}
	if !errors.Is(err, nats.ErrNoResponders) && !strings.Contains(err.Error(), "not enabled") {
		t.Errorf("error %q does not name JetStream's last answer", err)
	}
	if !strings.Contains(err.Error(), "JetStream still unavailable") {
		t.Errorf("error %q does not say that JetStream was unavailable", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("Subscribe gave up after %s, before its ctx ended (700ms)", d)
	}
}
