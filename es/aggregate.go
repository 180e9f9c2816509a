package es

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// Aggregate is a consistency boundary whose state is the fold of its
// events. An aggregate type embeds Root (which gives it AggregateRoot and
// Version) and implements Apply.
type Aggregate interface {
	// Apply changes the state by one event's data (a value of a type in the
	// Registry). It is called for recorded events on load and for new events
	// when they are raised; it must not fail for an event it raised.
	Apply(data any) error
	// AggregateRoot returns the embedded Root.
	AggregateRoot() *Root
}

// Root is the bookkeeping every aggregate embeds: its id, its version (the
// version of its stream as loaded plus raised events), and the events raised
// since it was loaded.
type Root struct {
	id      string
	version uint64 // version as loaded (stream version)
	pending []any
}

// AggregateRoot returns r; it makes the embedding type an Aggregate.
func (r *Root) AggregateRoot() *Root { return r }

// ID returns the aggregate's id.
func (r *Root) ID() string { return r.id }

// Version returns the version the aggregate was loaded at (0: new).
func (r *Root) Version() uint64 { return r.version }

// Pending returns the events raised since the aggregate was loaded.
func (r *Root) Pending() []any { return r.pending }

// Raise applies a new event to a and records it for the next Save.
func Raise(a Aggregate, data any) error {
	if err := a.Apply(data); err != nil {
		return err
	}
	r := a.AggregateRoot()
	r.pending = append(r.pending, data)
	return nil
}

// Snapshot is the saved state of an aggregate at a version.
type Snapshot struct {
	StreamID string
	Version  uint64
	// SchemaVersion is the version of the aggregate's state layout; a
	// repository ignores a snapshot whose schema version is not its own.
	SchemaVersion int
	Data          []byte
	RecordedAt    time.Time
}

// SnapshotStore keeps the latest snapshot of each stream.
type SnapshotStore interface {
	// SaveSnapshot records s, replacing an older snapshot of its stream.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the latest snapshot of stream; ok is false when
	// there is none.
	LoadSnapshot(ctx context.Context, stream string) (s Snapshot, ok bool, err error)
}

// Snapshotter may be implemented by an aggregate to control its snapshot
// encoding; otherwise the aggregate is encoded with encoding/json.
type Snapshotter interface {
	MarshalSnapshot() ([]byte, error)
	UnmarshalSnapshot(data []byte) error
}

// Repository loads and saves aggregates of type T in an EventStore.
type Repository[T Aggregate] struct {
	store  EventStore
	reg    *Registry
	newAgg func(id string) T
	cfg    repoConfig
}

type repoConfig struct {
	prefix        string
	source        string
	retries       int
	snapshots     SnapshotStore
	every         uint64
	schemaVersion int
	logger        *slog.Logger
	now           func() time.Time
}

// RepositoryOption configures a Repository.
type RepositoryOption func(*repoConfig)

// WithStreamIDPrefix makes the stream of aggregate id be prefix+id
// (default none).
func WithStreamIDPrefix(prefix string) RepositoryOption {
	return func(c *repoConfig) { c.prefix = prefix }
}

// WithSource sets the CloudEvents source of saved events (default "/eventkit/es").
func WithSource(source string) RepositoryOption { return func(c *repoConfig) { c.source = source } }

// WithRetryOnConflict makes Update run the command again on a freshly
// loaded aggregate, up to n more times, when Save meets a conflict. Before
// each retry it waits a short random time (up to 1 ms, doubling per retry,
// at most 100 ms), so that writers contending for one stream spread out
// instead of colliding again at once.
func WithRetryOnConflict(n int) RepositoryOption { return func(c *repoConfig) { c.retries = n } }

// WithSnapshots saves a snapshot to store every `every` events, tagged with
// schemaVersion; Load starts from a snapshot with the same schema version
// and ignores one with another.
func WithSnapshots(store SnapshotStore, every int, schemaVersion int) RepositoryOption {
	return func(c *repoConfig) {
		c.snapshots, c.schemaVersion = store, schemaVersion
		if every > 0 {
			c.every = uint64(every)
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) RepositoryOption { return func(c *repoConfig) { c.logger = l } }

// NewRepository returns a repository of aggregates made by newAgg (a new,
// empty aggregate with that id; the repository sets its Root).
func NewRepository[T Aggregate](store EventStore, reg *Registry, newAgg func(id string) T, opts ...RepositoryOption) *Repository[T] {
	c := repoConfig{source: "/eventkit/es", every: 100, logger: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return &Repository[T]{store: store, reg: reg, newAgg: newAgg, cfg: c}
}

// StreamID returns the stream of aggregate id.
func (r *Repository[T]) StreamID(id string) string { return r.cfg.prefix + id }

// Load returns aggregate id: from its latest compatible snapshot, then the
// events after it. It returns ErrNotFound when the stream has no event.
func (r *Repository[T]) Load(ctx context.Context, id string) (T, error) {
	a := r.newAgg(id)
	root := a.AggregateRoot()
	*root = Root{id: id}
	stream := r.StreamID(id)
	if r.cfg.snapshots != nil {
		s, ok, err := r.cfg.snapshots.LoadSnapshot(ctx, stream)
		if err != nil {
			return a, fmt.Errorf("es: load snapshot of %s: %w", stream, err)
		}
		if ok && s.SchemaVersion == r.cfg.schemaVersion {
			if err := unmarshalSnapshot(a, s.Data); err != nil {
				r.cfg.logger.Warn("es: ignoring a snapshot that does not decode", "stream", stream, "err", err)
				a = r.newAgg(id)
				root = a.AggregateRoot()
				*root = Root{id: id}
			} else {
				root = a.AggregateRoot()
				*root = Root{id: id, version: s.Version}
			}
		}
	}
	const page = 1000
	for {
		recs, err := r.store.ReadStream(ctx, stream, Forward, root.version+1, page)
		if err != nil {
			return a, fmt.Errorf("es: load %s: %w", stream, err)
		}
		for i := range recs {
			datas, err := r.reg.Decode(recs[i].Event)
			if err != nil {
				return a, err
			}
			for _, d := range datas {
				if err := a.Apply(d); err != nil {
					return a, fmt.Errorf("es: apply %s v%d: %w", stream, recs[i].Version, err)
				}
			}
			root.version = recs[i].Version
		}
		if len(recs) < page {
			break
		}
	}
	if root.version == 0 {
		return a, fmt.Errorf("%w: %s", ErrNotFound, stream)
	}
	return a, nil
}

// Save appends the events raised on a, expecting the stream at the version
// a was loaded at (a *ConflictError if another writer got there first).
// Saving an aggregate with no raised event does nothing.
func (r *Repository[T]) Save(ctx context.Context, a T) (AppendResult, error) {
	root := a.AggregateRoot()
	if len(root.pending) == 0 {
		return AppendResult{Version: root.version}, nil
	}
	stream := r.StreamID(root.id)
	evs := make([]event.Event, 0, len(root.pending))
	now := r.cfg.now()
	for _, d := range root.pending {
		e, err := r.reg.Event(uuid.NewString(), r.cfg.source, d)
		if err != nil {
			return AppendResult{}, err
		}
		e.SetSubject(root.id)
		e.SetTime(now)
		evs = append(evs, e)
	}
	res, err := r.store.Append(ctx, stream, Exact(root.version), evs...)
	if err != nil {
		return res, err
	}
	old := root.version
	root.version = res.Version
	root.pending = nil
	if r.cfg.snapshots != nil && r.cfg.every > 0 && old/r.cfg.every != res.Version/r.cfg.every {
		if data, err := marshalSnapshot(a); err != nil {
			r.cfg.logger.Warn("es: snapshot not encoded", "stream", stream, "err", err)
		} else if err := r.cfg.snapshots.SaveSnapshot(ctx, Snapshot{StreamID: stream, Version: res.Version, SchemaVersion: r.cfg.schemaVersion, Data: data, RecordedAt: now}); err != nil {
			r.cfg.logger.Warn("es: snapshot not saved", "stream", stream, "err", err)
		}
	}
	return res, nil
}

// Update loads aggregate id (a new one if its stream is empty), runs
// command on it and saves the events it raised. With WithRetryOnConflict,
// a conflict reloads the aggregate and runs command again.
func (r *Repository[T]) Update(ctx context.Context, id string, command func(T) error) (AppendResult, error) {
	for attempt := 0; ; attempt++ {
		a, err := r.Load(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return AppendResult{}, err
		}
		if err := command(a); err != nil {
			return AppendResult{}, err
		}
		res, err := r.Save(ctx, a)
		if err == nil || !errors.Is(err, ErrConflict) || attempt >= r.cfg.retries {
			return res, err
		}
		if werr := conflictBackoff(ctx, attempt); werr != nil {
			return res, err
		}
	}
}

// conflictBackoff waits a random time in [0, min(1ms·2^attempt, 100ms)], or
// until ctx ends (then it returns ctx's error).
func conflictBackoff(ctx context.Context, attempt int) error {
	limit := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(limit) + 1)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func marshalSnapshot(a any) ([]byte, error) {
	if s, ok := a.(Snapshotter); ok {
		return s.MarshalSnapshot()
	}
	return json.Marshal(a)
}

func unmarshalSnapshot(a any, data []byte) error {
	if s, ok := a.(Snapshotter); ok {
		return s.UnmarshalSnapshot(data)
	}
	return json.Unmarshal(data, a)
}
