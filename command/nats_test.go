package command_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/command/natsreply"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSCoreReplies sends commands through JetStream and replies through
// core NATS (package natsreply): no stream holds the replies.
func TestNATSCoreReplies(t *testing.T) {
	e := newNATSEnv(t, jetstream.MemoryStorage)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	core := natsreply.New(e.nc)
	defer func() {
		e.deleteStreams(t, e.prefix)
		if _, err := e.tr.JetStream().Stream(context.Background(), "EVENTKIT_"+e.replies); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("a stream holds the replies: %v", err)
		}
		_ = core.Close()
	}()
	runOverTransport(t, ctx, e.tr, e.tr, core, core, command.WithPrefix(e.prefix), command.WithReplyPrefix(e.replies))
}

// TestNATS runs commands over the NATS JetStream transport, with automatic
// streams for the command and the reply prefixes.
func TestNATS(t *testing.T) {
	e := newNATSEnv(t, jetstream.MemoryStorage)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer e.deleteStreams(t, e.prefix, e.replies)
	runOverTransport(t, ctx, e.tr, e.tr, e.tr, e.tr, command.WithPrefix(e.prefix), command.WithReplyPrefix(e.replies))
}
