package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit/natskit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// The NATS key-value store runs the conformance and crash tests too, on
// the server of EVENTKIT_NATS_URL (a crash test's child processes open the
// same bucket).
func init() { backends = append(backends, backend{"nats", natsBucket, openNATS}) }

func natsJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natskit.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// natsBucket names a bucket that the test's cleanup deletes.
func natsBucket(t testing.TB) string {
	js := natsJetStream(t)
	name := eventkittest.UniqueName("eksaga")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteKeyValue(ctx, name)
	})
	return name
}

func openNATS(t testing.TB, bucket string) (saga.Store, outbox.Store) {
	t.Helper()
	s, err := eknats.NewSagaStore(context.Background(), natsJetStream(t), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Outbox()
}
