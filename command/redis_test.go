package command_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	ekredis "github.com/eventkit/eventkit/redis"
)

// TestRedis runs commands over the Redis Streams transport.
func TestRedis(t *testing.T) {
	tr := dialRedis(t, ekredis.WithDiscoverInterval(50*time.Millisecond), ekredis.WithBlock(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runOverTransport(t, ctx, tr, tr, tr, tr)
}

// runOverTransport checks Send and Request over a real transport: a command
// sent before any handler runs is handled once the handlers start (durable
// Send), requests, error replies, unknown types and concurrent requests
// work as on memory.
// Commands go through pub and sub; replies through replyPub and replySub.
func runOverTransport(t *testing.T, ctx context.Context, pub eventkit.Publisher, sub eventkit.Subscriber, replyPub eventkit.Publisher, replySub eventkit.Subscriber, opts ...command.Option) {
	t.Helper()
	client, err := command.NewClient(pub, replySub, append([]command.Option{command.WithTimeout(20 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Sent while no handler runs: kept by the stream.
	if err := client.Send(ctx, "calc.note", Add{A: 40, B: 2}); err != nil {
		t.Fatal(err)
	}

	noted := make(chan int, 1)
	h, err := command.NewHandlers(replyPub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	_ = command.Handle(h, "calc.note", func(ctx context.Context, a Add) error { noted <- a.A + a.B; return nil })
	_ = command.HandleReply(h, "calc.add", sum)
	_ = command.Handle(h, "calc.fail", func(context.Context, Add) error { return command.Errorf("nope", "refused") })
	r := eventkit.NewRouter(sub)
	if err := h.Mount(r, eventkit.Concurrency(8)); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := r.Shutdown(sctx); err != nil {
			t.Error(err)
		}
	}()

	select {
	case n := <-noted:
		if n != 42 {
			t.Fatalf("noted %d", n)
		}
	case <-ctx.Done():
		t.Fatal("the command sent before the handlers started was not handled")
	}

	if got, err := command.Request[int](ctx, client, "calc.add", Add{A: 2, B: 3}); err != nil || got != 5 {
		t.Fatalf("Request = %d, %v", got, err)
	}
	if _, err := client.Request(ctx, "calc.fail", Add{}); !errors.Is(err, &command.Error{Code: "nope", Message: "refused"}) {
		t.Fatalf("err = %v, want *Error nope", err)
	}
	if _, err := client.Request(ctx, "calc.unknown", Add{}); !errors.Is(err, command.ErrUnknownCommand) {
		t.Fatalf("err = %v, want ErrUnknownCommand", err)
	}

	requestConcurrently(t, ctx, client, 50)
	if s := client.Stats(); s.DroppedReplies != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}
