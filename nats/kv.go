package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
	"github.com/nats-io/nats.go/jetstream"
)

// KVOption configures the key-value bucket of a DedupStore or
// CheckpointStore.
type KVOption func(*kvConfig)

type kvConfig struct {
	retention time.Duration
	storage   jetstream.StorageType
	replicas  int
	now       func() time.Time
}

// WithRetention sets how long a DedupStore keeps a key when Mark is given
// no TTL, and the longest it keeps any key: it is the bucket's TTL
// (default 7 days). A CheckpointStore ignores it (checkpoints never
// expire).
func WithRetention(d time.Duration) KVOption { return func(c *kvConfig) { c.retention = d } }

// WithKVStorage sets the bucket's storage (default file).
func WithKVStorage(s jetstream.StorageType) KVOption { return func(c *kvConfig) { c.storage = s } }

// WithKVReplicas sets the bucket's replicas in a cluster (default 1).
func WithKVReplicas(n int) KVOption { return func(c *kvConfig) { c.replicas = n } }

func newKVConfig(opts []KVOption) kvConfig {
	c := kvConfig{retention: 7 * 24 * time.Hour, storage: jetstream.FileStorage, replicas: 1, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// bucket opens the bucket, creating it if missing. An existing bucket
// whose TTL differs from ttl is an error (it is never changed silently).
func bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: key-value bucket %q: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats: key-value bucket %q: %w", cfg.Bucket, err)
	}
	if st.TTL() != cfg.TTL {
		return nil, fmt.Errorf("nats: key-value bucket %q exists with TTL %s, not %s", cfg.Bucket, st.TTL(), cfg.TTL)
	}
	return kv, nil
}

// kvKey maps any string to a valid key: "k" and the URL-safe base64 of
// the string.
func kvKey(s string) string { return "k" + base64.RawURLEncoding.EncodeToString([]byte(s)) }

// DedupStore is a dedup.Store on a JetStream key-value bucket,
// shared by every process connected to the same JetStream.
//
// Expiry: the bucket's TTL (WithRetention) removes every key at the
// latest after the retention; a shorter TTL given to Mark is kept in the
// value as an expiry time, and an expired key counts as unseen (Mark
// replaces it, by compare-and-set on its revision). TTLs longer than the
// retention are cut to it. This works on every JetStream server (per-key
// TTLs need nats-server 2.11).
type DedupStore struct {
	kv  jetstream.KeyValue
	cfg kvConfig
}

var _ dedup.Store = (*DedupStore)(nil)

// NewDedupStore opens (or creates) the bucket named bucket.
func NewDedupStore(ctx context.Context, js jetstream.JetStream, bucketName string, opts ...KVOption) (*DedupStore, error) {
	cfg := newKVConfig(opts)
	if cfg.retention <= 0 {
		return nil, eventkit.InvalidOption("nats.WithRetention", "must be positive, got "+cfg.retention.String())
	}
	kv, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket: bucketName, Description: "eventkit dedup records", History: 1,
		TTL: cfg.retention, Storage: cfg.storage, Replicas: cfg.replicas,
	})
	if err != nil {
		return nil, err
	}
	return &DedupStore{kv: kv, cfg: cfg}, nil
}

func (s *DedupStore) expired(v []byte, now time.Time) bool {
	exp, err := strconv.ParseInt(string(v), 10, 64)
	return err != nil || now.UnixNano() >= exp
}

// Seen reports whether key was marked and has not expired.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	e, err := s.kv.Get(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nats: dedup seen: %w", err)
	}
	return !s.expired(e.Value(), s.cfg.now()), nil
}

// Mark records key for ttl (ttl <= 0 or above the retention: the
// retention) and reports whether it was new. Concurrent Marks of one key
// have one winner.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 || ttl > s.cfg.retention {
		ttl = s.cfg.retention
	}
	k := kvKey(key)
	for {
		now := s.cfg.now()
		val := []byte(strconv.FormatInt(now.Add(ttl).UnixNano(), 10))
		_, err := s.kv.Create(ctx, k, val)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("nats: dedup mark: %w", err)
		}
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile: create again
		}
		if err != nil {
			return false, fmt.Errorf("nats: dedup mark: %w", err)
		}
		if !s.expired(e.Value(), now) {
			return false, nil
		}
		_, err = s.kv.Update(ctx, k, val, e.Revision())
		if err == nil {
			return true, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil // another Mark replaced the expired record first
		}
		return false, fmt.Errorf("nats: dedup mark: %w", err)
	}
}

// CheckpointStore is an es.CheckpointStore on a JetStream key-value
// bucket: one key per name, the position in decimal.
type CheckpointStore struct {
	kv jetstream.KeyValue
}

var _ es.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore opens (or creates) the bucket named bucket.
// Checkpoints never expire.
func NewCheckpointStore(ctx context.Context, js jetstream.JetStream, bucketName string, opts ...KVOption) (*CheckpointStore, error) {
	cfg := newKVConfig(opts)
	kv, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket: bucketName, Description: "eventkit checkpoints", History: 1,
		Storage: cfg.storage, Replicas: cfg.replicas,
	})
	if err != nil {
		return nil, err
	}
	return &CheckpointStore{kv: kv}, nil
}

// Load returns the saved position of name.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	e, err := s.kv.Get(ctx, kvKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("nats: checkpoint load %q: %w", name, err)
	}
	pos, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("nats: checkpoint load %q: bad value %q: %w", name, e.Value(), err)
	}
	return pos, true, nil
}

// Save records pos as the position of name.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	if _, err := s.kv.Put(ctx, kvKey(name), []byte(strconv.FormatUint(pos, 10))); err != nil {
		return fmt.Errorf("nats: checkpoint save %q: %w", name, err)
	}
	return nil
}
