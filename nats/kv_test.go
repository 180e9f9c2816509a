package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kvJetStream returns a JetStream context on a new connection and a unique
// bucket name, deleted at the end of the test.
func kvJetStream(t *testing.T, connect func(*testing.T) *nats.Conn) (jetstream.JetStream, string) {
	nc := connect(t)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := eventkittest.UniqueName("ekkv")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteKeyValue(ctx, name)
	})
	return js, name
}

func testStores(t *testing.T, connect func(*testing.T) *nats.Conn) {
	t.Run("Dedup", func(t *testing.T) {
		eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
			js, name := kvJetStream(t, connect)
			s, err := eknats.NewDedupStore(context.Background(), js, name, eknats.WithRetention(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("Checkpoint", func(t *testing.T) {
		eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore {
			js, name := kvJetStream(t, connect)
			s, err := eknats.NewCheckpointStore(context.Background(), js, name)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func TestStoresEmbedded(t *testing.T) { testStores(t, connectEmbedded) }

func TestStoresServer(t *testing.T) {
	connectServer(t).Close()
	testStores(t, connectServer)
}

// TestDedupRetentionRefused: a retention that is not positive fails with
// ErrInvalidOption naming the option (a plain error before).
func TestDedupRetentionRefused(t *testing.T) {
	js, name := kvJetStream(t, connectEmbedded)
	_, err := eknats.NewDedupStore(context.Background(), js, name, eknats.WithRetention(0))
	if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), "nats.WithRetention") {
		t.Fatalf("NewDedupStore(WithRetention(0)) = %v, want ErrInvalidOption naming nats.WithRetention", err)
	}
}

func TestDedupBucketNotChangedSilently(t *testing.T) {
	js, name := kvJetStream(t, connectEmbedded)
	ctx := context.Background()
	if _, err := eknats.NewDedupStore(ctx, js, name, eknats.WithRetention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := eknats.NewDedupStore(ctx, js, name, eknats.WithRetention(2*time.Hour)); err == nil {
		t.Fatal("opening a dedup bucket with another retention succeeded; want an error")
	}
	if _, err := eknats.NewDedupStore(ctx, js, name, eknats.WithRetention(time.Hour)); err != nil {
		t.Fatalf("reopening with the same retention: %v", err)
	}
}
