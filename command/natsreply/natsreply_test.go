package natsreply_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command/natsreply"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := natsserver.Run(natsserver.WithStoreDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		_ = srv.Shutdown(context.Background())
	})
	return nc
}

// Publish with a context that has no deadline works (FlushWithContext needs
// one: Publish gives it its own bound).
func TestPublishSubscribe(t *testing.T) {
	tr := natsreply.New(connect(t))
	defer tr.Close()
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, "replies.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "replies.a", eventkittest.NewEvent("1"), eventkittest.NewEvent("2")); err != nil {
		t.Fatal(err)
	}
	for i, m := range testkit.Take(t, s, 2, 5*time.Second) {
		want := []string{"1", "2"}[i]
		if m.Event.ID() != want || m.Topic != "replies.a" || string(m.Event.Data()) != `{"id":"`+want+`"}` {
			t.Fatalf("got %s on %s: %s", m.Event.ID(), m.Topic, m.Event.Data())
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-s.Messages(); ok {
		t.Fatal("a message after Close")
	}
}

func TestGroupShares(t *testing.T) {
	tr := natsreply.New(connect(t))
	defer tr.Close()
	ctx := context.Background()
	a, _ := tr.Subscribe(ctx, "x", eventkit.WithGroup("g"))
	b, _ := tr.Subscribe(ctx, "x", eventkit.WithGroup("g"))
	for i := range 20 {
		if err := tr.Publish(ctx, "x", eventkittest.NewEvent(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	deadline := time.After(5 * time.Second)
	for got < 20 {
		select {
		case <-a.Messages():
			got++
		case <-b.Messages():
			got++
		case <-deadline:
			t.Fatalf("got %d of 20", got)
		}
	}
	select {
	case <-a.Messages():
		t.Fatal("a group member got an event twice")
	case <-b.Messages():
		t.Fatal("a group member got an event twice")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestEnds(t *testing.T) {
	tr := natsreply.New(connect(t))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := tr.Subscribe(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range s.Messages() {
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	s2, _ := tr.Subscribe(context.Background(), "y")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	for range s2.Messages() {
	}
	if err := tr.Publish(context.Background(), "y", eventkittest.NewEvent("1")); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if _, err := tr.Subscribe(context.Background(), "y"); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("subscribe after Close: %v", err)
	}
	if err := tr.Publish(context.Background(), "bad..topic", eventkittest.NewEvent("1")); err == nil {
		t.Fatal("an invalid topic was accepted")
	}
}
