package outbox

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
)

// RelayOption configures a Relay. An invalid value makes NewRelay fail with
// an error wrapping eventkit.ErrInvalidOption.
type RelayOption func(*Relay) error

// WithOwner names the relay in the store's lease table (default: host name,
// process id and a random suffix); the name must not be empty. Two running
// relays must not share a name.
func WithOwner(name string) RelayOption {
	return opt.NotEmpty("outbox.WithOwner", name, func(r *Relay) *string { return &r.owner })
}

// WithBatchSize sets how many records a relay fetches and marks at once
// (default 500); n must be positive.
func WithBatchSize(n int) RelayOption {
	return opt.Positive("outbox.WithBatchSize", n, func(r *Relay) *int { return &r.batch })
}

// WithPollInterval sets how often a relay looks for new records when it was
// not woken by the store (default 1s; with a Notifier store, polling is the
// fallback for lost notifications). It must be positive.
func WithPollInterval(d time.Duration) RelayOption {
	return opt.Positive("outbox.WithPollInterval", d, func(r *Relay) *time.Duration { return &r.poll })
}

// WithLeaseTTL sets the lease time of the relay's partitions (default 15s;
// at least 1ms, the resolution of the stores' clocks). The relay renews
// every third of it; a relay that stops lets another take its partitions
// after at most this time.
func WithLeaseTTL(d time.Duration) RelayOption {
	return opt.AtLeast("outbox.WithLeaseTTL", d, time.Millisecond, func(r *Relay) *time.Duration { return &r.ttl })
}

// WithBackoff sets the first and the longest wait between retries of a
// failing publish or store call (default 100ms and 10s, doubling, with
// jitter). first must be positive and max at least first.
func WithBackoff(first, max time.Duration) RelayOption {
	return opt.Check("outbox.WithBackoff", first <= 0 || max < first, fmt.Sprintf("want 0 < first <= max, got first %s and max %s", first, max),
		func(r *Relay) { r.minBackoff, r.maxBackoff = first, max })
}

// WithPublishTimeout bounds each Publish call (default 30s); it must be
// positive.
func WithPublishTimeout(d time.Duration) RelayOption {
	return opt.Positive("outbox.WithPublishTimeout", d, func(r *Relay) *time.Duration { return &r.publishTimeout })
}

// WithLogger sets the relay's logger (default slog.Default()); it must not
// be nil.
func WithLogger(l *slog.Logger) RelayOption {
	return opt.NotNil("outbox.WithLogger", "the logger", l, func(r *Relay) **slog.Logger { return &r.logger })
}

// WithPurgeInterval sets how often the relay asks a Purger store to remove
// delivered rows past their retention (default 1 minute); it must be
// positive.
func WithPurgeInterval(d time.Duration) RelayOption {
	return opt.Positive("outbox.WithPurgeInterval", d, func(r *Relay) *time.Duration { return &r.purgeEvery })
}

// DefaultShutdownTimeout bounds what a relay does after its Run's context
// ended (see WithShutdownTimeout).
const DefaultShutdownTimeout = 10 * time.Second

// WithShutdownTimeout bounds what a relay does after the context of its
// Run ended (default DefaultShutdownTimeout): marking delivered the
// records it published and giving back its leases. Records published and
// not marked when it runs out are published again by the next owner of
// their partitions; leases not given back expire after WithLeaseTTL. It
// must be positive.
func WithShutdownTimeout(d time.Duration) RelayOption {
	return opt.Positive("outbox.WithShutdownTimeout", d, func(r *Relay) *time.Duration { return &r.shutdownTimeout })
}

// floorReset is how often a relay forgets its per-partition floors.
const floorReset = 30 * time.Second

// Relay publishes the committed records of a Store, in order, through a
// Publisher. Create it with NewRelay and run it with Run; run as many as you
// like against one store (see the package documentation).
type Relay struct {
	store          Store
	pub            eventkit.Publisher
	owner          string
	batch          int
	poll           time.Duration
	ttl            time.Duration
	minBackoff     time.Duration
	maxBackoff     time.Duration
	publishTimeout time.Duration
	purgeEvery     time.Duration
	logger         *slog.Logger

	shutdownTimeout time.Duration
	// final is Run's context, not cancelled with it but
	// shutdownTimeout after it ended: the bound of the store calls that
	// finish a stop (the last mark, the release).
	final context.Context

	wake    chan struct{}
	running atomic.Bool

	held      []int
	claimedAt time.Time     // local time the last successful claim started
	floors    map[int]int64 // per partition: every row up to it was delivered
	floorsAt  time.Time
	cursors   []Cursor

	published    atomic.Uint64
	publishFails atomic.Uint64
	leaseLost    atomic.Uint64
	partitions   atomic.Int64
}

// NewRelay returns a relay from store to pub. It fails, with an error
// wrapping eventkit.ErrInvalidOption, if store or pub is nil or an option
// value is invalid.
func NewRelay(store Store, pub eventkit.Publisher, opts ...RelayOption) (*Relay, error) {
	if store == nil {
		return nil, eventkit.InvalidOption("outbox.NewRelay", "the store must not be nil")
	}
	if pub == nil {
		return nil, eventkit.InvalidOption("outbox.NewRelay", "the publisher must not be nil")
	}
	r := &Relay{
		store:          store,
		pub:            pub,
		batch:          500,
		poll:           time.Second,
		ttl:            15 * time.Second,
		minBackoff:     100 * time.Millisecond,
		maxBackoff:     10 * time.Second,
		publishTimeout: 30 * time.Second,
		purgeEvery:     time.Minute,
		logger:         slog.Default(),

		shutdownTimeout: DefaultShutdownTimeout,
		wake:            make(chan struct{}, 1),
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = crand.Read(b[:])
		r.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return r, nil
}

// Owner returns the relay's name in the lease table.
func (r *Relay) Owner() string { return r.owner }

// RelayStats are counters of a relay.
type RelayStats struct {
	Published     uint64 // events confirmed by the publisher
	PublishErrors uint64 // failed Publish calls (each retried)
	LeasesLost    uint64 // batches whose lease was lost before the mark
	Partitions    int    // partitions held now
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Published: r.published.Load(), PublishErrors: r.publishFails.Load(),
		LeasesLost: r.leaseLost.Load(), Partitions: int(r.partitions.Load())}
}

// Wake makes a waiting relay look for records now (a store that is a
// Notifier does this on every commit).
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends, then marks what it published and gives back
// its leases, within WithShutdownTimeout, and returns nil. It returns an
// error only if the relay is already running. Store and publisher errors
// are logged and retried with backoff.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("outbox: relay already running")
	}
	defer r.running.Store(false)
	final, stopFinal := graceContext(ctx, r.shutdownTimeout)
	defer stopFinal()
	r.final = final
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if n, ok := r.store.(Notifier); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.listen(ctx, n)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		r.release()
	}()
	r.held, r.claimedAt = nil, time.Time{}
	r.floors, r.floorsAt = map[int]int64{}, time.Now()
	l := loop{lastPurge: time.Now()}
	for ctx.Err() == nil {
		r.step(ctx, &l)
	}
	return nil
}

// loop is the state of one Run loop between its steps.
type loop struct {
	fails     int // store calls failed in a row
	lastPurge time.Time
}

// step is one turn of the Run loop: renew the leases when due, purge when
// due, then fetch a batch of the held partitions and deliver it, or wait
// for work. A failed store call is retried after a backoff.
func (r *Relay) step(ctx context.Context, l *loop) {
	if r.claimDue() {
		if err := r.claim(ctx); err != nil {
			r.failed(ctx, l, "outbox relay: claiming partitions", err)
			return
		}
	}
	if p, ok := r.store.(Purger); ok && time.Since(l.lastPurge) >= r.purgeEvery {
		l.lastPurge = time.Now()
		if _, err := p.Purge(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("outbox relay: purging delivered rows", "err", err)
		}
	}
	if len(r.held) == 0 {
		r.waitWork(ctx)
		return
	}
	recs, err := r.store.Fetch(ctx, r.nextCursors(), r.batch)
	if err != nil {
		r.failed(ctx, l, "outbox relay: fetching records", err)
		return
	}
	l.fails = 0
	if len(recs) == 0 {
		r.waitWork(ctx)
		return
	}
	r.deliver(ctx, recs)
}

// failed logs a failed store call and waits the backoff of the failures in
// a row; when ctx ended (the cause of the failure), it does neither.
func (r *Relay) failed(ctx context.Context, l *loop, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	r.logger.Warn(msg, "owner", r.owner, "err", err)
	r.sleep(ctx, r.backoff(l.fails))
	l.fails++
}

// nextCursors returns where to fetch from in each held partition: after its
// floor.
func (r *Relay) nextCursors() []Cursor {
	if time.Since(r.floorsAt) > floorReset {
		// A full sweep now and then: the floors rely on the store's
		// commit order per partition; this bounds the delay of a row
		// that broke it.
		clear(r.floors)
		r.floorsAt = time.Now()
	}
	cursors := r.cursors[:0]
	for _, p := range r.held {
		cursors = append(cursors, Cursor{Partition: p, After: r.floors[p]})
	}
	r.cursors = cursors
	return cursors
}

// graceContext returns a context with ctx's values that ends d after ctx
// ended, and its cancel function.
func graceContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	grace, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(d, cancel)
		context.AfterFunc(grace, func() { t.Stop() })
	})
	return grace, func() { stop(); cancel() }
}

// release gives back the relay's leases when Run ends, within
// WithShutdownTimeout of the end of its context.
func (r *Relay) release() {
	if err := r.store.Release(r.final, r.owner); err != nil {
		r.logger.Warn("outbox relay: releasing leases", "owner", r.owner, "err", err)
	}
	r.held = nil
	r.partitions.Store(0)
}

func (r *Relay) listen(ctx context.Context, n Notifier) {
	fails := 0
	for ctx.Err() == nil {
		start := time.Now()
		err := n.Listen(ctx, r.Wake)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			fails = 0
		}
		r.logger.Warn("outbox relay: listening for commits (polling meanwhile)", "err", err)
		r.Wake() // something may have committed while not listening
		r.sleep(ctx, r.backoff(fails))
		fails++
	}
}

// leaseDeadline is the local time until which the relay may publish its
// partitions: the claim's start plus the TTL, less a safety margin.
func (r *Relay) leaseDeadline() time.Time {
	return r.claimedAt.Add(r.ttl - r.ttl/5)
}

func (r *Relay) claimDue() bool {
	return r.claimedAt.IsZero() || time.Since(r.claimedAt) >= r.ttl/3
}

func (r *Relay) claim(ctx context.Context) error {
	start := time.Now()
	held, err := r.store.Claim(ctx, r.owner, r.ttl)
	if err != nil {
		// Whatever was held is only held until the old deadline.
		if !r.claimedAt.IsZero() && time.Now().After(r.leaseDeadline()) {
			r.held = nil
			r.partitions.Store(0)
		}
		return err
	}
	slices.Sort(held)
	if !slices.Equal(held, r.held) {
		r.logger.Debug("outbox relay: partitions", "owner", r.owner, "held", held)
	}
	for p := range r.floors {
		if _, ok := slices.BinarySearch(held, p); !ok {
			delete(r.floors, p) // another relay may have delivered more
		}
	}
	r.held, r.claimedAt = held, start
	r.partitions.Store(int64(len(held)))
	return nil
}

func (r *Relay) waitWork(ctx context.Context) {
	d := r.poll
	if !r.claimedAt.IsZero() {
		if until := time.Until(r.claimedAt.Add(r.ttl / 3)); until < d {
			d = until
		}
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.wake:
	case <-t.C:
	}
}

func (r *Relay) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *Relay) backoff(fails int) time.Duration {
	d := r.minBackoff
	for i := 0; i < fails && d < r.maxBackoff; i++ {
		d *= 2
	}
	if d > r.maxBackoff {
		d = r.maxBackoff
	}
	// Full jitter in the upper half.
	return d/2 + rand.N(d/2+1)
}

// deliver publishes recs in order, grouping consecutive records of one
// topic into one Publish call, retrying a failed call with backoff, then
// marks the published prefix delivered.
func (r *Relay) deliver(ctx context.Context, recs []Record) {
	done := 0
	fails := 0
	defer func() {
		if done > 0 {
			r.mark(ctx, recs[:done])
		}
	}()
	events := make([]event.Event, 0, len(recs))
	for done < len(recs) {
		if ctx.Err() != nil {
			return
		}
		if !time.Now().Before(r.leaseDeadline()) || r.claimDue() {
			// Mark what was published while the leases are surely held (a
			// claim may give some back to another relay), then renew, and
			// stop if a partition of the rest was lost.
			if done > 0 {
				if !r.mark(ctx, recs[:done]) {
					done = 0
					return
				}
				recs, done = recs[done:], 0
			}
			if err := r.claim(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("outbox relay: renewing leases", "owner", r.owner, "err", err)
			}
			if !time.Now().Before(r.leaseDeadline()) {
				return
			}
			for _, rec := range recs[done:] {
				if _, ok := slices.BinarySearch(r.held, rec.Partition); !ok {
					r.leaseLost.Add(1)
					return
				}
			}
		}
		end := done + 1
		for end < len(recs) && recs[end].Topic == recs[done].Topic {
			end++
		}
		events = events[:0]
		for _, rec := range recs[done:end] {
			events = append(events, rec.Event)
		}
		pctx, cancel := context.WithTimeout(ctx, r.publishTimeout)
		err := r.pub.Publish(pctx, recs[done].Topic, events...)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.publishFails.Add(1)
			d := r.backoff(fails)
			fails++
			r.logger.Warn("outbox relay: publish failed, retrying", "topic", recs[done].Topic,
				"events", end-done, "attempt", fails, "retry_in", d, "err", err)
			// Mark what the publisher confirmed so far, then wait.
			if done > 0 {
				if !r.mark(ctx, recs[:done]) {
					done = 0 // refetch from the unmarked records
					return
				}
				recs, done = recs[done:], 0
			}
			r.sleep(ctx, d)
			continue
		}
		fails = 0
		r.published.Add(uint64(end - done))
		done = end
	}
}

// mark marks recs delivered and moves the floors past them. If it cannot,
// it forgets the floors of their partitions, so that the unmarked records
// are fetched (and published again) before anything after them.
func (r *Relay) mark(ctx context.Context, recs []Record) bool {
	// A shutting-down relay still marks what was published, to spare the
	// next owner the duplicates, within WithShutdownTimeout.
	mctx := r.final
	for attempt := 0; ; attempt++ {
		err := r.store.MarkDelivered(mctx, r.owner, recs)
		if err == nil {
			for _, rec := range recs {
				if rec.ID > r.floors[rec.Partition] {
					r.floors[rec.Partition] = rec.ID
				}
			}
			return true
		}
		for _, rec := range recs {
			delete(r.floors, rec.Partition)
		}
		if errors.Is(err, ErrLeaseLost) {
			r.leaseLost.Add(1)
			r.logger.Warn("outbox relay: lease lost before marking; the next owner publishes again", "owner", r.owner, "err", err)
			r.claimedAt = time.Time{} // claim again now
			return false
		}
		if mctx.Err() != nil || attempt >= 5 || time.Now().After(r.leaseDeadline()) {
			r.logger.Warn("outbox relay: marking records delivered failed; they will be published again", "err", err)
			r.claimedAt = time.Time{}
			return false
		}
		r.sleep(mctx, r.backoff(attempt))
	}
}
