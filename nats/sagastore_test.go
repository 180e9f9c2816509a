package nats_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

// sagaStores returns a factory of saga stores, each on a bucket of its own.
func sagaStores(connect func(*testing.T) *nats.Conn) eventkittest.SagaStoreFactory {
	return func(t *testing.T) (saga.Store, outbox.Store) {
		js, name := kvJetStream(t, connect)
		s, err := eknats.NewSagaStore(context.Background(), js, name)
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Outbox()
	}
}

func TestSagaStoreEmbedded(t *testing.T) {
	eventkittest.TestSagaStore(t, sagaStores(connectEmbedded))
}

func TestSagaStoreServer(t *testing.T) {
	connectServer(t).Close()
	eventkittest.TestSagaStore(t, sagaStores(connectServer))
}
