package eventkittest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/binding"
	"github.com/eventkit/eventkit/outbox"
)

// OutboxStore is what the outbox-store suite tests: an outbox.Store that
// counts its pending rows (postgres.Outbox and sqlite.Outbox are).
type OutboxStore interface {
	outbox.Store
	// Pending returns the number of rows not yet delivered.
	Pending(ctx context.Context) (int64, error)
}

// OutboxTx is a business transaction of the store's database with the
// store's Write bound to it.
type OutboxTx interface {
	// Write is the store's Write (outbox.Writer) in this transaction.
	Write(ctx context.Context, topic string, events ...event.Event) error
	// Commit commits the transaction.
	Commit(ctx context.Context) error
	// Rollback rolls the transaction back.
	Rollback(ctx context.Context) error
}

// OutboxHarness is one outbox, migrated, on tables of its own, and the way
// to run business transactions in its database.
type OutboxHarness struct {
	// Store is the outbox.
	Store OutboxStore
	// Begin starts a business transaction.
	Begin func(ctx context.Context) (OutboxTx, error)
	// Reopen returns another Store on the same tables, as a restarted
	// process would open it (Migrate included).
	Reopen func(t *testing.T) OutboxStore
}

// OutboxFactory returns a new outbox with the given number of partitions.
type OutboxFactory func(t *testing.T, partitions int) OutboxHarness

// TestOutboxStore runs the conformance suite for an outbox store, at the
// level of the outbox.Store interface and with relays (outbox.Relay) on
// top:
//
//   - a Write exists if and only if its transaction commits: invisible to
//     Fetch and Pending until the commit, gone after a rollback; an invalid
//     event or topic writes nothing of the call;
//   - Fetch returns the committed rows in ID order, each partition's in
//     commit order, the event as written, within the cursors and the limit;
//     a row of a partition never becomes visible before a row of the same
//     partition with a lower ID (the relay's floors rely on it);
//   - leases: relays share the partitions fairly and never hold one at the
//     same time; a lease expires after its TTL and another relay takes it
//     (relays of one store share one TTL: a store counts as live the relays
//     seen within the claimer's TTL);
//     Release gives every lease back; MarkDelivered only marks rows of held
//     partitions (else outbox.ErrLeaseLost) and a marked row is gone;
//   - restart: rows fetched and never marked (a relay that crashed) are
//     fetched again, the same, by the next owner of their partition,
//     through a store reopened on the same tables;
//   - relays: committed events of concurrent transactions with rollbacks
//     are published once each, in commit order per key, by two relays;
//     while the broker is down nothing is marked, then every event flows
//     once, in order; a relay joining and one leaving hand partitions over
//     without publishing an event twice.
func TestOutboxStore(t *testing.T, newOutbox OutboxFactory) {
	for _, c := range []struct {
		name string
		test func(*testing.T, OutboxFactory)
	}{
		{"CommitAndRollback", obTestCommitAndRollback},
		{"InvisibleUntilCommit", obTestInvisibleUntilCommit},
		{"InvalidInput", obTestInvalidInput},
		{"FetchOrderCursorsLimit", obTestFetch},
		{"CommitOrderPerPartition", obTestCommitOrder},
		{"LeasesShared", obTestLeasesShared},
		{"LeaseExpiry", obTestLeaseExpiry},
		{"Release", obTestRelease},
		{"MarkDeliveredNeedsLease", obTestMarkNeedsLease},
		{"RestartRefetches", obTestRestart},
		{"RelaysConcurrentTransactions", obTestRelayConcurrent},
		{"RelayBrokerDown", obTestRelayBrokerDown},
		{"RelaysShareAndFailOver", obTestRelayFailOver},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newOutbox) })
	}
}

// OutboxEvent returns an event with the partitionkey key (none if empty)
// and the extension seq.
func OutboxEvent(id, key string, seq int) event.Event {
	e := NewEvent(id)
	if key != "" {
		e.SetExtension("partitionkey", key)
	}
	e.SetExtension("seq", int32(seq))
	return e
}

// OutboxSeq returns the seq extension of an event made by OutboxEvent.
func OutboxSeq(t testing.TB, e event.Event) int {
	t.Helper()
	v, ok := e.Extensions()["seq"]
	if !ok {
		t.Fatalf("event %s has no seq", e.ID())
	}
	n, err := strconv.Atoi(binding.FormatValue(v))
	if err != nil {
		t.Fatalf("seq of %s: %v", e.ID(), err)
	}
	return n
}

// RunRelay runs r until the returned stop is called, or until the end of
// t; stop waits for Run to return and fails t if it returned an error.
func RunRelay(t testing.TB, r *outbox.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Relay.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitFor polls cond until it holds, and fails t (naming what) if it does
// not within timeout. It polls every millisecond at first, then less often
// (at most every 10ms, so that a cond that queries a database does not
// flood it): a test waits by polling with a deadline, not by a sleep that
// guesses how long things take.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(pause)
	}
}

func obCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// obWrite writes events in one transaction, committed or rolled back.
func obWrite(ctx context.Context, h OutboxHarness, topic string, commit bool, events ...event.Event) error {
	tx, err := h.Begin(ctx)
	if err != nil {
		return err
	}
	if err := tx.Write(ctx, topic, events...); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if !commit {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// obBegin begins a business transaction, or fails t.
func obBegin(t *testing.T, h OutboxHarness) OutboxTx {
	t.Helper()
	tx, err := h.Begin(obCtx(t))
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return tx
}

func obMustWrite(t *testing.T, h OutboxHarness, topic string, events ...event.Event) {
	t.Helper()
	if err := obWrite(obCtx(t), h, topic, true, events...); err != nil {
		t.Fatalf("Write in a committed transaction: %v", err)
	}
}

// obAll returns cursors of every partition of s, from the start.
func obAll(s outbox.Store) []outbox.Cursor {
	cs := make([]outbox.Cursor, s.Partitions())
	for p := range cs {
		cs[p].Partition = p
	}
	return cs
}

func obFetch(t *testing.T, s outbox.Store, cursors []outbox.Cursor, limit int) []outbox.Record {
	t.Helper()
	recs, err := s.Fetch(obCtx(t), cursors, limit)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return recs
}

func obIDs(recs []outbox.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Event.ID()
	}
	return ids
}

func obPending(t *testing.T, s OutboxStore) int64 {
	t.Helper()
	n, err := s.Pending(obCtx(t))
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return n
}

func obTestCommitAndRollback(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	ctx := obCtx(t)
	full := fullEvent(UniqueName("full-"))
	obMustWrite(t, h, "ob.orders", full, OutboxEvent("committed-2", "", 0))
	if err := obWrite(ctx, h, "ob.orders", false, OutboxEvent("rolled-back", "", 0)); err != nil {
		t.Fatalf("Write in a rolled-back transaction: %v", err)
	}
	if n := obPending(t, h.Store); n != 2 {
		t.Fatalf("Pending = %d; want 2 (the rolled-back write must not exist)", n)
	}
	recs := obFetch(t, h.Store, obAll(h.Store), 100)
	if got := obIDs(recs); !slices.Equal(got, []string{full.ID(), "committed-2"}) {
		t.Fatalf("Fetch = %v; want [%s committed-2]", got, full.ID())
	}
	if d := DiffEvents(full, recs[0].Event); d != "" {
		t.Errorf("event changed through the outbox: %s", d)
	}
	for _, r := range recs {
		if r.Topic != "ob.orders" || r.Partition != outbox.PartitionOf(r.Event, h.Store.Partitions()) {
			t.Errorf("record %s: topic %q, partition %d; want ob.orders, %d", r.Event.ID(), r.Topic, r.Partition, outbox.PartitionOf(r.Event, h.Store.Partitions()))
		}
	}
	if recs[0].ID >= recs[1].ID {
		t.Errorf("IDs %d, %d of one write not increasing", recs[0].ID, recs[1].ID)
	}
}

func obTestInvisibleUntilCommit(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	ctx := obCtx(t)
	tx := obBegin(t, h)
	defer func() { _ = tx.Rollback(ctx) }()
	if err := tx.Write(ctx, "ob.open", OutboxEvent("open-1", "k", 0), OutboxEvent("open-2", "k", 1)); err != nil {
		t.Fatal(err)
	}
	if recs := obFetch(t, h.Store, obAll(h.Store), 100); len(recs) != 0 {
		t.Fatalf("Fetch during the writing transaction = %v; want nothing before the commit", obIDs(recs))
	}
	if n := obPending(t, h.Store); n != 0 {
		t.Fatalf("Pending during the writing transaction = %d; want 0", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := obIDs(obFetch(t, h.Store, obAll(h.Store), 100)); !slices.Equal(got, []string{"open-1", "open-2"}) {
		t.Fatalf("Fetch after the commit = %v; want [open-1 open-2]", got)
	}
}

func obTestInvalidInput(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	ctx := obCtx(t)
	// An invalid event writes nothing of the call, even in a transaction
	// that then commits.
	tx := obBegin(t, h)
	err := tx.Write(ctx, "ob.orders", OutboxEvent("good-before-bad", "", 0), NewEvent(""))
	var ve *eventkit.ValidationError
	if !errors.As(err, &ve) {
		_ = tx.Rollback(ctx)
		t.Fatalf("Write of an invalid event: got %v, want a *eventkit.ValidationError", err)
	}
	for _, topic := range []string{"ob.*", "ob.>", "", "ob..x"} {
		if err := tx.Write(ctx, topic, OutboxEvent("bad-topic", "", 0)); err == nil {
			t.Errorf("Write to topic %q succeeded", topic)
		}
	}
	if err := tx.Write(ctx, "ob.orders"); err != nil {
		t.Errorf("Write of no event: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after refused writes: %v", err)
	}
	if n := obPending(t, h.Store); n != 0 {
		t.Fatalf("Pending = %d after refused writes; want 0", n)
	}
	if recs, err := h.Store.Fetch(ctx, nil, 10); err != nil || len(recs) != 0 {
		t.Fatalf("Fetch with no cursor = %v, %v; want nothing", obIDs(recs), err)
	}
	if err := h.Store.MarkDelivered(ctx, "nobody", nil); err != nil {
		t.Fatalf("MarkDelivered of no record: %v", err)
	}
}

// obTestFetch: rows of three keys written in several transactions.
func obTestFetch(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 8)
	s := h.Store
	const keys, perKey = 3, 6
	var order []string // commit order
	for i := range perKey {
		var evs []event.Event
		for k := range keys {
			evs = append(evs, OutboxEvent(fmt.Sprintf("k%d-%d", k, i), fmt.Sprintf("key-%d", k), i))
		}
		obMustWrite(t, h, fmt.Sprintf("ob.t%d", i%2), evs...)
		order = append(order, obIDs(obRecords(evs))...)
	}
	all := obFetch(t, s, obAll(s), 1000)
	if got := obIDs(all); !slices.Equal(got, order) {
		t.Fatalf("Fetch of every partition = %v; want the commit order %v", got, order)
	}
	for i, r := range all {
		if i > 0 && r.ID <= all[i-1].ID {
			t.Fatalf("Fetch not in ID order: %d after %d", r.ID, all[i-1].ID)
		}
		if want := fmt.Sprintf("ob.t%d", OutboxSeq(t, r.Event)%2); r.Topic != want {
			t.Fatalf("record %s on topic %q; want %q", r.Event.ID(), r.Topic, want)
		}
	}
	if got := obIDs(obFetch(t, s, obAll(s), 4)); !slices.Equal(got, order[:4]) {
		t.Fatalf("Fetch with limit 4 = %v; want %v", got, order[:4])
	}
	// One partition, after a cursor: only its later rows.
	p := all[0].Partition
	var mine []outbox.Record
	for _, r := range all {
		if r.Partition == p {
			mine = append(mine, r)
		}
	}
	got := obFetch(t, s, []outbox.Cursor{{Partition: p, After: mine[1].ID}}, 1000)
	if !slices.Equal(obIDs(got), obIDs(mine[2:])) {
		t.Fatalf("Fetch of partition %d after %d = %v; want %v", p, mine[1].ID, obIDs(got), obIDs(mine[2:]))
	}
	if got := obFetch(t, s, []outbox.Cursor{{Partition: p, After: mine[len(mine)-1].ID}}, 1000); len(got) != 0 {
		t.Fatalf("Fetch after the last row of partition %d = %v; want nothing", p, obIDs(got))
	}
}

func obRecords(evs []event.Event) []outbox.Record {
	recs := make([]outbox.Record, len(evs))
	for i, e := range evs {
		recs[i].Event = e
	}
	return recs
}

// obTestCommitOrder: a transaction that wrote a partition is held open
// while another writes the same partition and tries to commit. Whatever the
// store does (make the second wait, or give it a higher ID), every Fetch
// seen meanwhile must be a prefix of the partition's final order: a row
// never becomes visible before a row of its partition with a lower ID.
func obTestCommitOrder(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	ctx := obCtx(t)
	first := obBegin(t, h)
	if err := first.Write(ctx, "ob.order", OutboxEvent("first", "one-key", 0)); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- obWrite(ctx, h, "ob.order", true, OutboxEvent("second", "one-key", 1)) }()
	var seen [][]outbox.Record
	watch := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(watch) {
		seen = append(seen, obFetch(t, h.Store, obAll(h.Store), 10))
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the second transaction: %v", err)
	}
	final := obFetch(t, h.Store, obAll(h.Store), 10)
	if len(final) != 2 {
		t.Fatalf("Fetch after both commits = %v; want both rows", obIDs(final))
	}
	for _, snap := range append(seen, final) {
		for _, r := range snap {
			for _, f := range final {
				if f.ID < r.ID && !slices.ContainsFunc(snap, func(x outbox.Record) bool { return x.ID == f.ID }) {
					t.Fatalf("row %d (%s) was visible before row %d (%s) of the same partition", r.ID, r.Event.ID(), f.ID, f.Event.ID())
				}
			}
		}
	}
}

func obClaim(t *testing.T, s outbox.Store, owner string, ttl time.Duration) []int {
	t.Helper()
	held, err := s.Claim(obCtx(t), owner, ttl)
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	if !slices.IsSorted(held) {
		t.Fatalf("Claim(%s) = %v; want sorted", owner, held)
	}
	return held
}

// obTestLeasesShared: two relays claiming in turns end with half the
// partitions each, and never hold one at the same time.
func obTestLeasesShared(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 8)
	s := h.Store
	if s.Partitions() != 8 {
		t.Fatalf("Partitions = %d; want 8", s.Partitions())
	}
	if a := obClaim(t, s, "a", time.Minute); len(a) != 8 {
		t.Fatalf("a alone holds %v; want every partition", a)
	}
	var a, b []int
	WaitFor(t, 30*time.Second, "a and b share the partitions", func() bool {
		b = obClaim(t, s, "b", time.Minute)
		a = obClaim(t, s, "a", time.Minute)
		for _, p := range a {
			if slices.Contains(b, p) {
				t.Fatalf("a holds %v and b holds %v at the same time", a, b)
			}
		}
		return len(a) == 4 && len(b) == 4
	})
}

// obTestLeaseExpiry: a relay that stops renewing loses its partitions
// after the TTL; another takes them, and the first can no longer mark.
// (Relays of one store share a TTL: a store counts the relays seen within
// the claimer's TTL as live.)
func obTestLeaseExpiry(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 2)
	s := h.Store
	obMustWrite(t, h, "ob.x", OutboxEvent("x-1", "", 0))
	const ttl = time.Second
	start := time.Now()
	if a := obClaim(t, s, "a", ttl); len(a) != 2 {
		t.Fatalf("a holds %v; want both partitions", a)
	}
	recs := obFetch(t, s, obAll(s), 10)
	b := obClaim(t, s, "b", ttl)
	if time.Since(start) < ttl/2 && len(b) != 0 {
		t.Fatalf("b took %v while a's leases were live", b)
	}
	WaitFor(t, 30*time.Second, "b takes a's expired leases", func() bool {
		return len(obClaim(t, s, "b", ttl)) == 2
	})
	if err := s.MarkDelivered(obCtx(t), "a", recs); !errors.Is(err, outbox.ErrLeaseLost) {
		t.Fatalf("MarkDelivered by a after its lease expired = %v; want ErrLeaseLost", err)
	}
	if n := obPending(t, h.Store); n != 1 {
		t.Fatalf("Pending = %d; the row marked without a lease must stay", n)
	}
}

func obTestRelease(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	s := h.Store
	if a := obClaim(t, s, "a", time.Minute); len(a) != 4 {
		t.Fatalf("a holds %v", a)
	}
	if err := s.Release(obCtx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if b := obClaim(t, s, "b", time.Minute); len(b) != 4 {
		t.Fatalf("after a released, b holds %v; want every partition (a no longer counts as live)", b)
	}
}

func obTestMarkNeedsLease(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	s := h.Store
	ctx := obCtx(t)
	obMustWrite(t, h, "ob.m", OutboxEvent("m-1", "k1", 0), OutboxEvent("m-2", "k2", 0), OutboxEvent("m-3", "k1", 1))
	obClaim(t, s, "a", time.Minute)
	recs := obFetch(t, s, obAll(s), 10)
	if err := s.MarkDelivered(ctx, "b", recs); !errors.Is(err, outbox.ErrLeaseLost) {
		t.Fatalf("MarkDelivered by an owner without the lease = %v; want ErrLeaseLost", err)
	}
	if n := obPending(t, h.Store); n != 3 {
		t.Fatalf("Pending = %d after a refused mark; want 3", n)
	}
	if err := s.MarkDelivered(ctx, "a", recs[:2]); err != nil {
		t.Fatalf("MarkDelivered by the lease owner: %v", err)
	}
	if got := obIDs(obFetch(t, s, obAll(s), 10)); !slices.Equal(got, obIDs(recs[2:])) {
		t.Fatalf("Fetch after marking two = %v; want %v", got, obIDs(recs[2:]))
	}
	if n := obPending(t, h.Store); n != 1 {
		t.Fatalf("Pending = %d after marking two of three; want 1", n)
	}
}

// obTestRestart: rows fetched by a relay that then died (no mark, no
// release) are fetched again, unchanged, by the next owner, on a store
// reopened on the same tables.
func obTestRestart(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 2)
	obMustWrite(t, h, "ob.r", OutboxEvent("r-1", "k", 0), OutboxEvent("r-2", "k", 1))
	const ttl = time.Second
	obClaim(t, h.Store, "dead", ttl)
	before := obFetch(t, h.Store, obAll(h.Store), 10)
	s := h.Reopen(t)
	if s.Partitions() != 2 {
		t.Fatalf("reopened store has %d partitions; want 2", s.Partitions())
	}
	var after []outbox.Record
	WaitFor(t, 30*time.Second, "the survivor takes the dead relay's partitions and marks their rows", func() bool {
		if len(obClaim(t, s, "survivor", ttl)) != 2 {
			return false
		}
		after = obFetch(t, s, obAll(s), 10)
		err := s.MarkDelivered(obCtx(t), "survivor", after)
		if err != nil && !errors.Is(err, outbox.ErrLeaseLost) { // lost: the claim was too long ago
			t.Fatalf("MarkDelivered by the survivor: %v", err)
		}
		return err == nil
	})
	if len(after) != len(before) {
		t.Fatalf("after the restart Fetch = %v; want %v again", obIDs(after), obIDs(before))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Topic != before[i].Topic || DiffEvents(before[i].Event, after[i].Event) != "" {
			t.Fatalf("record %d changed across the restart: %+v, then %+v", i, before[i], after[i])
		}
	}
	if n := obPending(t, h.Store); n != 0 {
		t.Fatalf("Pending = %d after the survivor marked every row", n)
	}
}

// RecordingPublisher is an eventkit.Publisher that records the events it
// is given; while Down is set, every Publish fails (and counts in Fails).
// The zero value is ready to use.
type RecordingPublisher struct {
	// Down makes Publish fail, as a broker that is down.
	Down atomic.Bool
	// Fails counts the Publish calls that failed.
	Fails atomic.Int64

	mu  sync.Mutex
	got []event.Event
}

// Publish records events, or fails while Down is set.
func (p *RecordingPublisher) Publish(_ context.Context, _ string, events ...event.Event) error {
	if p.Down.Load() {
		p.Fails.Add(1)
		return errors.New("broker unavailable")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, events...)
	return nil
}

// Close does nothing.
func (p *RecordingPublisher) Close() error { return nil }

// Events returns the events published so far, in order.
func (p *RecordingPublisher) Events() []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// distinct returns the number of distinct ids published.
func (p *RecordingPublisher) distinct() int {
	seen := map[string]bool{}
	for _, e := range p.Events() {
		seen[e.ID()] = true
	}
	return len(seen)
}

// obRelay returns a relay of s to pub that polls every 20ms.
func obRelay(t *testing.T, s outbox.Store, pub eventkit.Publisher, opts ...outbox.RelayOption) *outbox.Relay {
	t.Helper()
	opts = append([]outbox.RelayOption{outbox.WithPollInterval(20 * time.Millisecond), outbox.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	r, err := outbox.NewRelay(s, pub, opts...)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	return r
}

// obCheckOnceInOrder checks that got holds each id of want once (none
// else), each key's events in seq order from 0.
func obCheckOnceInOrder(t *testing.T, got []event.Event, want map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	seqs := map[string][]int{} // per key, in publishing order
	for _, e := range got {
		if seen[e.ID()] {
			t.Errorf("event %s published twice", e.ID())
			continue
		}
		seen[e.ID()] = true
		if !want[e.ID()] {
			t.Errorf("published %s, which was never committed", e.ID())
		}
		k := eventkit.EventKey(e)
		seqs[k] = append(seqs[k], OutboxSeq(t, e))
	}
	for k, s := range seqs {
		for i, n := range s {
			if n != i {
				t.Errorf("key %s: seq %d published at place %d (commit order broken): %v", k, n, i, s)
				break
			}
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("committed event %s never published", id)
		}
	}
}

// obTestRelayConcurrent: 16 concurrent streams of business transactions,
// a third of them rolled back at random, under two relays: exactly the
// committed events are published, once each, in commit order per key.
func obTestRelayConcurrent(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 8)
	pub := &RecordingPublisher{}
	var stops []func()
	for i := range 2 {
		stops = append(stops, RunRelay(t, obRelay(t, h.Store, pub, outbox.WithOwner(fmt.Sprintf("relay-%d", i)))))
	}
	const writers, txEach = 16, 25
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, err := obWriteRandomly(obCtx(t), h, w, txEach)
			if err != nil {
				t.Errorf("business transaction: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				committed[id] = true
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	WaitFor(t, 60*time.Second, fmt.Sprintf("%d committed events published", len(committed)), func() bool { return pub.distinct() >= len(committed) })
	WaitFor(t, 30*time.Second, "every row marked", func() bool { return obPending(t, h.Store) == 0 })
	for _, stop := range stops {
		stop() // no publish in flight: a late duplicate would show
	}
	obCheckOnceInOrder(t, pub.Events(), committed)
}

// obWriteRandomly runs n transactions of 1 to 3 events of the key of
// writer w, rolling back a third of them at random, and returns the ids
// committed.
func obWriteRandomly(ctx context.Context, h OutboxHarness, w, n int) ([]string, error) {
	rnd := rand.New(rand.NewPCG(uint64(w), 9))
	var ids []string
	for i := range n {
		var evs []event.Event
		for j := range 1 + rnd.IntN(3) {
			evs = append(evs, OutboxEvent(fmt.Sprintf("w%d-t%d-e%d", w, i, j), fmt.Sprintf("key-%d", w), len(ids)+j))
		}
		commit := rnd.IntN(3) != 0
		if err := obWrite(ctx, h, "ob.orders", commit, evs...); err != nil {
			return ids, err
		}
		if commit {
			ids = append(ids, obIDs(obRecords(evs))...)
		}
	}
	return ids, nil
}

// obTestRelayBrokerDown: while the broker is down the events wait in the
// outbox; when it is back, they flow in order, once each.
func obTestRelayBrokerDown(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 4)
	pub := &RecordingPublisher{}
	pub.Down.Store(true)
	r := obRelay(t, h.Store, pub, outbox.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	stop := RunRelay(t, r)
	const n = 60
	want := map[string]bool{}
	for i := range n {
		e := OutboxEvent(fmt.Sprintf("e-%d", i), "one-key", i)
		obMustWrite(t, h, "ob.orders", e)
		want[e.ID()] = true
	}
	WaitFor(t, 30*time.Second, "the relay retries", func() bool { return pub.Fails.Load() >= 5 })
	if p := obPending(t, h.Store); p != n {
		t.Fatalf("Pending while the broker is down = %d; want %d", p, n)
	}
	if got := pub.Events(); len(got) != 0 {
		t.Fatalf("%d events published while the broker was down", len(got))
	}
	pub.Down.Store(false)
	WaitFor(t, 30*time.Second, "every row marked", func() bool { return obPending(t, h.Store) == 0 })
	stop()
	obCheckOnceInOrder(t, pub.Events(), want)
	if r.Stats().PublishErrors == 0 {
		t.Errorf("relay stats show no publish errors")
	}
}

// obTestRelayFailOver: two relays split the partitions; when one stops,
// the other takes them all. Events written all along are published once
// each, in order per key, across both hand-overs.
func obTestRelayFailOver(t *testing.T, newOutbox OutboxFactory) {
	h := newOutbox(t, 8)
	pub := &RecordingPublisher{}
	opts := []outbox.RelayOption{outbox.WithLeaseTTL(3 * time.Second)}
	a := obRelay(t, h.Store, pub, append(opts, outbox.WithOwner("a"))...)
	b := obRelay(t, h.Store, pub, append(opts, outbox.WithOwner("b"))...)
	stopWriting := make(chan struct{})
	written := make(chan map[string]bool)
	go func() {
		want := map[string]bool{}
		defer func() { written <- want }()
		for n := 0; ; n++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			e := OutboxEvent(fmt.Sprintf("ha-%d", n), fmt.Sprintf("key-%d", n%5), n/5)
			if err := obWrite(context.Background(), h, "ob.ha", true, e); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			want[e.ID()] = true
			time.Sleep(2 * time.Millisecond)
		}
	}()
	held := func(na, nb int) func() bool {
		return func() bool { return a.Stats().Partitions == na && b.Stats().Partitions == nb }
	}
	stopA := RunRelay(t, a)
	WaitFor(t, 60*time.Second, "a alone holds all", held(8, 0))
	stopB := RunRelay(t, b)
	WaitFor(t, 60*time.Second, "a and b share", held(4, 4))
	published := b.Stats().Published
	WaitFor(t, 60*time.Second, "b publishes", func() bool { return b.Stats().Published > published+10 })
	stopB()
	WaitFor(t, 60*time.Second, "a takes over", held(8, 0))
	close(stopWriting)
	want := <-written
	WaitFor(t, 60*time.Second, "every row marked", func() bool { return obPending(t, h.Store) == 0 })
	stopA()
	obCheckOnceInOrder(t, pub.Events(), want)
}
