package command_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/command/natsreply"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSCoreReplies sends commands through JetStream and replies through
// core NATS (package natsreply): no stream holds the replies.
func TestNATSCoreReplies(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	nc, err := nats.Connect(url)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_NATS_URL", url, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix, replies := eventkittest.UniqueName("cmd"), eventkittest.UniqueName("rpl")
	tr, err := eknats.New(nc, eknats.WithAutoStreams(eknats.StreamConfig{Storage: jetstream.MemoryStorage, MaxAge: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	core := natsreply.New(nc)
	defer func() {
		if err := tr.JetStream().DeleteStream(context.Background(), "EVENTKIT_"+prefix); err != nil {
			t.Errorf("delete the stream of %s: %v", prefix, err)
		}
		if _, err := tr.JetStream().Stream(context.Background(), "EVENTKIT_"+replies); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("a stream holds the replies: %v", err)
		}
		_ = core.Close()
		_ = tr.Close()
	}()
	runOverTransport(t, ctx, tr, tr, core, core, command.WithPrefix(prefix), command.WithReplyPrefix(replies))
}

// TestNATS runs commands over the NATS JetStream transport, with automatic
// streams for the command and the reply prefixes.
func TestNATS(t *testing.T) {
	url := eventkittest.ServerAddr(t, "EVENTKIT_NATS_URL", eventkittest.DefaultNATSURL, eventkittest.DialProbe)
	nc, err := nats.Connect(url)
	if err != nil {
		eventkittest.Unavailable(t, "EVENTKIT_NATS_URL", url, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix, replies := eventkittest.UniqueName("cmd"), eventkittest.UniqueName("rpl")
	tr, err := eknats.New(nc, eknats.WithAutoStreams(eknats.StreamConfig{Storage: jetstream.MemoryStorage, MaxAge: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range []string{prefix, replies} {
			if err := tr.JetStream().DeleteStream(context.Background(), "EVENTKIT_"+s); err != nil {
				t.Errorf("delete the stream of %s: %v", s, err)
			}
		}
		_ = tr.Close()
	}()
	runOverTransport(t, ctx, tr, tr, tr, tr, command.WithPrefix(prefix), command.WithReplyPrefix(replies))
}
