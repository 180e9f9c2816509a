package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// subStore keeps the subscriptions of the API, secrets included.
type subStore interface {
	all(ctx context.Context) ([]APISubscription, error)
	put(ctx context.Context, sub APISubscription) error
	del(ctx context.Context, id string) error
}

// kvStore keeps them in a JetStream key-value bucket, one key per
// subscription: on the embedded broker, on disk under the data directory,
// so that they survive a restart.
type kvStore struct{ kv jetstream.KeyValue }

func newKVStore(ctx context.Context, js jetstream.JetStream, bucket string) (*kvStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "eventkit hub: the subscriptions made through the Subscriptions API",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", bucket, err)
	}
	return &kvStore{kv: kv}, nil
}

func (k *kvStore) all(ctx context.Context) ([]APISubscription, error) {
	keys, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []APISubscription
	for key := range keys.Keys() {
		e, err := k.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		var sub APISubscription
		if err := json.Unmarshal(e.Value(), &sub); err != nil {
			return nil, fmt.Errorf("subscription %s: %w", key, err)
		}
		out = append(out, sub)
	}
	return out, nil
}

func (k *kvStore) put(ctx context.Context, sub APISubscription) error {
	b, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	_, err = k.kv.Put(ctx, sub.ID, b)
	return err
}

func (k *kvStore) del(ctx context.Context, id string) error {
	return k.kv.Purge(ctx, id)
}

// memStore keeps them in memory (with WithBroker, whose broker the server
// cannot store them in): they end with the process.
type memStore struct {
	mu   sync.Mutex
	subs map[string]APISubscription
}

func newMemStore() *memStore { return &memStore{subs: map[string]APISubscription{}} }

func (m *memStore) all(context.Context) ([]APISubscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]APISubscription, 0, len(m.subs))
	for _, sub := range m.subs {
		out = append(out, sub)
	}
	return out, nil
}

func (m *memStore) put(_ context.Context, sub APISubscription) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[sub.ID] = sub
	return nil
}

func (m *memStore) del(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, id)
	return nil
}
