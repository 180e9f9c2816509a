package es_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/es/esprom"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The aggregate used in these tests: a bank account.
type Opened struct {
	Owner string `json:"owner"`
}
type Deposited struct {
	Amount int `json:"amount"`
}
type Withdrawn struct {
	Amount int `json:"amount"`
}

type Account struct {
	es.Root
	Owner   string
	Balance int
	Applied int
}

func (a *Account) Apply(data any) error {
	a.Applied++
	switch e := data.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	default:
		return fmt.Errorf("account: unexpected %T", data)
	}
	return nil
}

func (a *Account) Withdraw(n int) error {
	if n > a.Balance {
		return errors.New("insufficient funds")
	}
	return es.Raise(a, Withdrawn{Amount: n})
}

func newRegistry() *es.Registry {
	r := es.NewRegistry()
	es.Register[Opened](r, "bank.opened")
	es.Register[Deposited](r, "bank.deposited")
	es.Register[Withdrawn](r, "bank.withdrawn")
	return r
}

func newAccount(id string) *Account { return &Account{} }

// update runs repo.Update on the account id and fails t on an error.
func update(t *testing.T, repo *es.Repository[*Account], id string, fn func(a *Account) error) {
	t.Helper()
	if _, err := repo.Update(context.Background(), id, fn); err != nil {
		t.Fatal(err)
	}
}

func TestRepositorySaveLoadConflict(t *testing.T) {
	ctx := context.Background()
	store := memory.NewEventStore()
	repo := es.NewRepository(store, newRegistry(), newAccount, es.WithStreamIDPrefix("account-"))
	if _, err := repo.Load(ctx, "a1"); !errors.Is(err, es.ErrNotFound) {
		t.Fatalf("Load(new) err = %v; want ErrNotFound", err)
	}
	a := newAccount("a1")
	a.AggregateRoot() // zero Root; Update sets the id
	res, err := repo.Update(ctx, "a1", func(a *Account) error {
		if err := es.Raise(a, Opened{Owner: "ada"}); err != nil {
			return err
		}
		return es.Raise(a, Deposited{Amount: 100})
	})
	if err != nil || res.Version != 2 {
		t.Fatalf("Update = %+v, %v", res, err)
	}
	x, err := repo.Load(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if x.ID() != "a1" || x.Version() != 2 || x.Owner != "ada" || x.Balance != 100 {
		t.Fatalf("loaded %+v", x)
	}
	recs, _ := store.ReadStream(ctx, "account-a1", es.Forward, 0, 0)
	if len(recs) != 2 || recs[0].Event.Type() != "bank.opened" || recs[0].Event.Subject() != "a1" {
		t.Fatalf("stored %+v", recs)
	}
	// Two copies loaded at version 2: the second save conflicts.
	y, _ := repo.Load(ctx, "a1")
	if err := x.Withdraw(30); err != nil {
		t.Fatal(err)
	}
	if err := y.Withdraw(80); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Save(ctx, x); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Save(ctx, y)
	var ce *es.ConflictError
	if !errors.As(err, &ce) || ce.Stream != "account-a1" || ce.Expected != es.Exact(2) || ce.Actual != 3 {
		t.Fatalf("second save: %v; want ConflictError{account-a1, exact(2), 3}", err)
	}
}

func TestRepositoryRetryOnConflict(t *testing.T) {
	ctx := context.Background()
	store := memory.NewEventStore()
	reg := newRegistry()
	plain := es.NewRepository(store, reg, newAccount)
	retrying := es.NewRepository(store, reg, newAccount, es.WithRetryOnConflict(20))
	if _, err := plain.Update(ctx, "a", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1000}) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conflicts int
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, err := retrying.Update(ctx, "a", func(a *Account) error { return a.Withdraw(10) }); err != nil {
					mu.Lock()
					conflicts++
					mu.Unlock()
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	a, _ := plain.Load(ctx, "a")
	if a.Balance != 1000-8*5*10 || a.Version() != 41 {
		t.Fatalf("balance %d at version %d after 40 retried withdrawals; want 600 at 41", a.Balance, a.Version())
	}
}

func TestUpcastV1ToV3(t *testing.T) {
	ctx := context.Background()
	// Version 3 of "bank.deposited" has amount in cents and a currency; v1
	// had "sum" in units, v2 renamed it to "amount" (units).
	type DepositedV3 struct {
		Cents    int    `json:"cents"`
		Currency string `json:"currency"`
	}
	reg := es.NewRegistry()
	es.Register[DepositedV3](reg, "bank.deposited", es.WithVersion(3))
	reg.Upcast("bank.deposited", 1, es.RenameField("sum", "amount"))
	reg.Upcast("bank.deposited", 2, func(e event.Event) ([]event.Event, error) {
		var v2 struct {
			Amount int `json:"amount"`
		}
		if err := json.Unmarshal(e.Data(), &v2); err != nil {
			return nil, err
		}
		if err := e.SetData(event.ApplicationJSON, DepositedV3{Cents: v2.Amount * 100, Currency: "EUR"}); err != nil {
			return nil, err
		}
		return []event.Event{e}, nil
	})
	store := memory.NewEventStore()
	v1 := event.New()
	v1.SetID("old-1")
	v1.SetSource("/legacy")
	v1.SetType("bank.deposited") // no dataversion: version 1
	_ = v1.SetData(event.ApplicationJSON, map[string]int{"sum": 7})
	if _, err := store.Append(ctx, "acc", es.NoStream, v1); err != nil {
		t.Fatal(err)
	}
	recs, _ := store.ReadStream(ctx, "acc", es.Forward, 0, 0)
	got, err := reg.Decode(recs[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (DepositedV3{Cents: 700, Currency: "EUR"}) {
		t.Fatalf("v1 event decoded as %#v; want DepositedV3{700, EUR}", got)
	}
	// A new event is written at version 3 and decodes without upcasting.
	e, err := reg.Event("new-1", "/x", DepositedV3{Cents: 5, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if es.DataVersion(&e) != 3 {
		t.Fatalf("new event at data version %d; want 3", es.DataVersion(&e))
	}
	// A missing step in the chain is an error, not a silent misread.
	reg2 := es.NewRegistry()
	es.Register[DepositedV3](reg2, "bank.deposited", es.WithVersion(3))
	reg2.Upcast("bank.deposited", 1, es.RenameField("sum", "amount"))
	if _, err := reg2.Decode(recs[0].Event); err == nil {
		t.Fatal("decoding v1 without a v2→v3 upcaster succeeded")
	}
}

func TestUpcastSplit(t *testing.T) {
	// v1 "bank.transfer" carried both sides; v2 splits it into a withdrawal
	// and a deposit.
	reg := newRegistry()
	type Transfer struct{}
	es.Register[Transfer](reg, "bank.transfer", es.WithVersion(2))
	reg.Upcast("bank.transfer", 1, func(e event.Event) ([]event.Event, error) {
		var v1 struct{ Amount int }
		if err := json.Unmarshal(e.Data(), &v1); err != nil {
			return nil, err
		}
		w, d := e.Clone(), e.Clone()
		w.SetType("bank.withdrawn")
		_ = w.SetData(event.ApplicationJSON, Withdrawn{Amount: v1.Amount})
		d.SetType("bank.deposited")
		_ = d.SetData(event.ApplicationJSON, Deposited{Amount: v1.Amount})
		return []event.Event{w, d}, nil
	})
	e := event.New()
	e.SetID("t1")
	e.SetSource("/x")
	e.SetType("bank.transfer")
	_ = e.SetData(event.ApplicationJSON, map[string]int{"Amount": 5})
	got, err := reg.Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (Withdrawn{5}) || got[1] != (Deposited{5}) {
		t.Fatalf("split gave %#v", got)
	}
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	store := memory.NewEventStore()
	snaps := memory.NewSnapshotStore()
	reg := newRegistry()
	repo := es.NewRepository(store, reg, newAccount, es.WithSnapshots(snaps, 10, 1))
	update(t, repo, "s", func(a *Account) error { return es.Raise(a, Opened{Owner: "bo"}) })
	for i := 0; i < 24; i++ {
		update(t, repo, "s", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) })
	}
	snap, ok, _ := snaps.LoadSnapshot(ctx, "s")
	if !ok || snap.Version != 20 || snap.SchemaVersion != 1 {
		t.Fatalf("snapshot = %+v, %v; want one at version 20 (every 10), schema 1", snap, ok)
	}
	a, err := repo.Load(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	// From the snapshot (which counted 20 applies) plus the 5 later events.
	if a.Version() != 25 || a.Balance != 24 || a.Owner != "bo" || a.Applied != 25 {
		t.Fatalf("loaded from snapshot: %+v", a)
	}
	// Prove the snapshot was used: doctor it, then load again.
	snap.Data = []byte(`{"Owner":"bo","Balance":1000,"Applied":20}`)
	_ = snaps.SaveSnapshot(ctx, snap)
	if a, _ := repo.Load(ctx, "s"); a.Balance != 1005 {
		t.Fatalf("balance %d; want 1005 (snapshot 1000 + 5 later events)", a.Balance)
	}
	// A repository with another schema version ignores the snapshot.
	repo2 := es.NewRepository(store, reg, newAccount, es.WithSnapshots(snaps, 10, 2))
	if a, _ := repo2.Load(ctx, "s"); a.Balance != 24 || a.Version() != 25 {
		t.Fatalf("schema 2 loaded %+v; want the full replay (balance 24)", a)
	}
}

func TestProjectorCheckpointRebuildLag(t *testing.T) {
	ctx := context.Background()
	store := memory.NewEventStore()
	cps := memory.NewCheckpointStore()
	reg := newRegistry()
	repo := es.NewRepository(store, reg, newAccount, es.WithStreamIDPrefix("acc-"))
	for i := 0; i < 10; i++ {
		id := fmt.Sprint(i)
		update(t, repo, id, func(a *Account) error {
			_ = es.Raise(a, Opened{Owner: id})
			return es.Raise(a, Deposited{Amount: i})
		})
	}
	totals := map[string]int{}
	var handled int
	handler := func(ctx context.Context, r es.RecordedEvent) error {
		handled++
		datas, err := reg.Decode(r.Event)
		if err != nil {
			return err
		}
		for _, d := range datas {
			if dep, ok := d.(Deposited); ok {
				totals[r.Event.Subject()] += dep.Amount
			}
		}
		return nil
	}
	promReg := prometheus.NewRegistry()
	lag, err := esprom.LagGauge(promReg, "totals")
	if err != nil {
		t.Fatal(err)
	}
	p, err := es.NewProjector("totals", store, cps, handler, es.WithLagGauge(lag), es.WithProjectionFilter(es.Filter{Types: []string{"bank.deposited"}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if handled != 10 || totals["9"] != 9 || p.Position() != 20 || p.Lag() != 0 {
		t.Fatalf("after catch-up: handled %d, totals %v, position %d, lag %d", handled, totals, p.Position(), p.Lag())
	}
	if cp, _, _ := cps.Load(ctx, "totals"); cp != 20 {
		t.Fatalf("checkpoint %d; want 20", cp)
	}
	// New events: a restarted projector resumes from the checkpoint.
	for i := 0; i < 3; i++ {
		update(t, repo, "9", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) })
	}
	lag2, err := esprom.LagGauge(promReg, "totals") // the same gauge
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := es.NewProjector("totals", store, cps, handler, es.WithLagGauge(lag2), es.WithProjectionFilter(es.Filter{Types: []string{"bank.deposited"}}))
	if err := p2.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if handled != 13 || totals["9"] != 12 {
		t.Fatalf("after resume: handled %d (want 13: nothing twice), total of 9 = %d", handled, totals["9"])
	}
	if v := testutil.ToFloat64(lag2); v != 0 {
		t.Fatalf("lag gauge %v; want 0", v)
	}
	// Lag: with the projection stopped, the head moves on.
	update(t, repo, "1", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) })
	if err := p2.MeasureLag(ctx); err != nil {
		t.Fatal(err)
	}
	if p2.Lag() != 1 || testutil.ToFloat64(lag2) != 1 {
		t.Fatalf("lag %d (gauge %v); want 1", p2.Lag(), testutil.ToFloat64(lag2))
	}
	// Rebuild: reset the read model and replay from zero.
	if err := p2.Rebuild(ctx, func(context.Context) error { totals = map[string]int{}; handled = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	if handled != 14 || totals["9"] != 12 || totals["1"] != 2 {
		t.Fatalf("after rebuild: handled %d, totals %v", handled, totals)
	}
}

func TestProjectorRunLive(t *testing.T) {
	ctx := context.Background()
	store := memory.NewEventStore()
	cps := memory.NewCheckpointStore()
	seen := make(chan uint64, 100)
	p, _ := es.NewProjector("live", store, cps, func(ctx context.Context, r es.RecordedEvent) error {
		seen <- r.Position
		return nil
	})
	stop := runProjector(p)
	for i := 0; i < 5; i++ {
		e := event.New()
		e.SetID(fmt.Sprint(i))
		e.SetSource("/x")
		e.SetType("t")
		if _, err := store.Append(ctx, "s", es.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(1); want <= 5; want++ {
		if got := testkit.Receive(t, seen, 10*time.Second, "a live event"); got != want {
			t.Fatalf("projection got position %d; want %d", got, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
	if cp, _, _ := cps.Load(ctx, "live"); cp != 5 {
		t.Fatalf("checkpoint after stop = %d; want 5", cp)
	}
}

// endingStore is an event store whose subscriptions have ended by the time
// Subscribe returns, because Subscribe cancels the projection's context:
// Run then sees its context done and the subscription's channel closed at
// once, as it can when a live projection is stopped.
type endingStore struct {
	es.EventStore
	cancel context.CancelFunc
}

func (s endingStore) Subscribe(ctx context.Context, after uint64, opts ...es.SubscribeOption) (es.Subscription, error) {
	sub, err := s.EventStore.Subscribe(ctx, after, opts...)
	if err != nil {
		return nil, err
	}
	s.cancel()
	for range sub.Events() { // until it ends with ctx
	}
	return sub, nil
}

// TestProjectorRunEndsNilWhenStopped: Run returns nil when its context
// ends, also when the subscription, ended with the context, is what Run
// sees first (it returned context.Canceled then: 2 runs in 20 of
// TestProjectorRunLive failed so). Each try is a coin toss between the two
// ready cases, so 64 tries of each mode.
func TestProjectorRunEndsNilWhenStopped(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		for try := range 64 {
			ctx, cancel := context.WithCancel(context.Background())
			store := endingStore{EventStore: memory.NewEventStore(), cancel: cancel}
			p, err := es.NewProjector("stopped", store, memory.NewCheckpointStore(),
				func(context.Context, es.RecordedEvent) error { return nil }, es.WithParallel(parallel))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(ctx); err != nil {
				t.Fatalf("parallel %d, try %d: Run = %v after its context ended, want nil", parallel, try, err)
			}
		}
	}
}

// runProjector runs p in the background; stop cancels its context and
// returns what Run returned.
func runProjector(p *es.Projector) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestCheckAppend(t *testing.T) {
	evs := []event.Event{event.New(), event.New()}
	evs[0].SetID("a")
	evs[1].SetID("b")
	cases := []struct {
		name     string
		expected es.ExpectedVersion
		current  uint64
		existing map[string][2]uint64
		write    bool
		conflict bool
		dup      bool
	}{
		{"fresh exact", es.Exact(3), 3, nil, true, false, false},
		{"fresh any", es.Any, 7, nil, true, false, false},
		{"stale", es.Exact(2), 3, nil, false, true, false},
		{"repeat", es.Exact(1), 3, map[string][2]uint64{"a": {2, 10}, "b": {3, 11}}, false, false, false},
		{"repeat any", es.Any, 5, map[string][2]uint64{"a": {2, 10}, "b": {3, 11}}, false, false, false},
		{"wrong place", es.Exact(2), 3, map[string][2]uint64{"a": {2, 10}, "b": {3, 11}}, false, true, false},
		{"partial at head", es.Exact(3), 3, map[string][2]uint64{"a": {2, 10}}, false, false, true},
		{"out of order", es.Any, 3, map[string][2]uint64{"a": {3, 11}, "b": {2, 10}}, false, false, true},
	}
	for _, c := range cases {
		res, write, err := es.CheckAppend("s", c.expected, c.current, evs, c.existing)
		if write != c.write || errors.Is(err, es.ErrConflict) != c.conflict || errors.Is(err, es.ErrDuplicateEvent) != c.dup {
			t.Errorf("%s: write=%v err=%v", c.name, write, err)
		}
		if c.name == "repeat" && (res.Version != 3 || fmt.Sprint(res.Positions) != "[10 11]") {
			t.Errorf("repeat result %+v", res)
		}
	}
}

// appendStreams appends perStream events to each of streams streams
// (s0, s1, ...), round-robin, so that the global log interleaves them; the
// event of stream j with version v has the id "sj-v".
func appendStreams(t *testing.T, store es.EventStore, streams, perStream int) int {
	t.Helper()
	for v := 1; v <= perStream; v++ {
		for j := 0; j < streams; j++ {
			e := event.New()
			e.SetID(fmt.Sprintf("s%d-%d", j, v))
			e.SetSource("/test")
			e.SetType("test.happened")
			if _, err := store.Append(context.Background(), fmt.Sprint("s", j), es.Any, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return streams * perStream
}

// recorder is a projection handler that records what it handled and fails
// on the events poison selects.
type recorder struct {
	mu      sync.Mutex
	handled map[string]int
	calls   map[string]int
	poison  func(id string, call int) error
}

func newRecorder(poison func(id string, call int) error) *recorder {
	return &recorder{handled: map[string]int{}, calls: map[string]int{}, poison: poison}
}

func (r *recorder) handle(_ context.Context, ev es.RecordedEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ev.Event.ID()
	r.calls[id]++
	if r.poison != nil {
		if err := r.poison(id, r.calls[id]); err != nil {
			return err
		}
	}
	r.handled[id]++
	return nil
}

func (r *recorder) count(m map[string]int, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[id]
}

var errPoison = errors.New("cannot project this event")

// One poison event in the middle of the log: the others are projected, the
// poison is dead-lettered with the error, and the checkpoint advances past
// it; sequential and parallel.
func TestProjectionPoisonIsDeadLettered(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprint("parallel=", parallel), func(t *testing.T) {
			ctx := context.Background()
			store, cps, bus, dlq := deadLetterEnv(t, "projections.dlq")
			total := appendStreams(t, store, 3, 3) // s1-2 is at position 5
			rec := newRecorder(func(id string, _ int) error {
				if id == "s1-2" {
					return errPoison
				}
				return nil
			})
			policy := es.DeadLetterOnError(bus, "projections.dlq").WithRetry(2, time.Millisecond, 2*time.Millisecond)
			p, err := es.NewProjector("balances", store, cps, rec.handle, quiet, es.WithErrorPolicy(policy), es.WithParallel(parallel))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.CatchUp(ctx); err != nil {
				t.Fatalf("CatchUp: %v", err)
			}
			if n := len(rec.handled); n != total-1 {
				t.Fatalf("%d events projected, want %d", n, total-1)
			}
			if c := rec.count(rec.calls, "s1-2"); c != 3 {
				t.Fatalf("poison handled %d times, want 3 (1 + 2 retries)", c)
			}
			if cp, _, _ := cps.Load(ctx, "balances"); cp != uint64(total) || p.Position() != uint64(total) {
				t.Fatalf("checkpoint %d, position %d, want %d", cp, p.Position(), total)
			}
			if p.DeadLettered() != 1 {
				t.Fatalf("DeadLettered %d, want 1", p.DeadLettered())
			}
			m := testkit.Receive(t, dlq.Messages(), 10*time.Second, "the dead letter")
			ext := m.Event.Extensions()
			if m.Event.ID() != "s1-2" || ext["dlqposition"] != "5" || ext["dlqstream"] != "s1" ||
				ext["dlqhandler"] != "balances" || ext["dlqattempts"] != int32(3) || ext["dlqerror"] != errPoison.Error() {
				t.Fatalf("dead letter %s with extensions %v", m.Event.ID(), ext)
			}
		})
	}
}

// StopOnError (the default) stops at the failing event, after the
// retries; the checkpoint stays before it, and the next run handles it.
func TestProjectionStopsOnError(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprint("parallel=", parallel), func(t *testing.T) {
			ctx := context.Background()
			store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
			total := appendStreams(t, store, 3, 3)
			healed := false // set between runs: CatchUp returns once its handlers have
			rec := newRecorder(func(id string, _ int) error {
				if id == "s1-2" && !healed {
					return errPoison
				}
				return nil
			})
			opts, wantCalls := []es.ProjectionOption{es.WithParallel(parallel)}, 1
			if parallel == 1 {
				opts, wantCalls = append(opts, es.WithErrorPolicy(es.StopOnError().WithRetry(1, time.Millisecond, time.Millisecond))), 2
			}
			p, err := es.NewProjector("stop", store, cps, rec.handle, append(opts, quiet)...)
			if err != nil {
				t.Fatal(err)
			}
			err = p.CatchUp(ctx)
			if !errors.Is(err, errPoison) || !contains(err.Error(), "position 5") {
				t.Fatalf("CatchUp: %v, want the poison's error at position 5", err)
			}
			if cp, _, _ := cps.Load(ctx, "stop"); cp >= 5 {
				t.Fatalf("checkpoint %d passed the failed event at 5", cp)
			}
			if c := rec.count(rec.calls, "s1-2"); c != wantCalls {
				t.Fatalf("poison handled %d times, want %d", c, wantCalls)
			}
			healed = true
			if err := p.CatchUp(ctx); err != nil {
				t.Fatalf("CatchUp after the fix: %v", err)
			}
			if len(rec.handled) != total || rec.count(rec.handled, "s1-2") != 1 {
				t.Fatalf("%d events projected (the poison %d times), want %d", len(rec.handled), rec.count(rec.handled, "s1-2"), total)
			}
			if cp, _, _ := cps.Load(ctx, "stop"); cp != uint64(total) {
				t.Fatalf("checkpoint %d, want %d", cp, total)
			}
		})
	}
}

// RetryOnError waits out a transient failure: nothing is skipped.
func TestProjectionRetriesTransientFailure(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	total := appendStreams(t, store, 2, 2)
	rec := newRecorder(func(id string, call int) error {
		if id == "s0-2" && call <= 3 {
			return errors.New("database unavailable")
		}
		return nil
	})
	p, err := es.NewProjector("retry", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.RetryOnError(time.Millisecond, 4*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.handled) != total || rec.count(rec.calls, "s0-2") != 4 {
		t.Fatalf("%d projected, s0-2 called %d times; want %d and 4", len(rec.handled), rec.count(rec.calls, "s0-2"), total)
	}
}

// A retry without limit ends with the context: Run returns nil, and the
// checkpoint stays before the failing event.
func TestProjectionRetryEndsWithContext(t *testing.T) {
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	appendStreams(t, store, 1, 3)
	failing := make(chan struct{}, 100)
	rec := newRecorder(func(id string, _ int) error {
		if id == "s0-2" {
			failing <- struct{}{}
			return errors.New("down")
		}
		return nil
	})
	p, err := es.NewProjector("retry-ctx", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.RetryOnError(time.Millisecond, time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runProjector(p)
	for i := 0; i < 3; i++ {
		testkit.Receive(t, failing, 10*time.Second, "a retry of the failing event")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if cp, _, _ := cps.Load(context.Background(), "retry-ctx"); cp != 1 {
		t.Fatalf("checkpoint %d, want 1", cp)
	}
}

// Permanent errors and panics are not retried: the last step applies at
// once.
func TestProjectionPermanentErrorsAndPanicsNotRetried(t *testing.T) {
	for name, fail := range map[string]func() error{
		"permanent": func() error { return permanent(errPoison) },
		"panic":     func() error { panic("bad event") },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store, cps, bus, dlq := deadLetterEnv(t, "dlq")
			total := appendStreams(t, store, 1, 3)
			rec := newRecorder(func(id string, _ int) error {
				if id == "s0-2" {
					return fail()
				}
				return nil
			})
			policy := es.DeadLetterOnError(bus, "dlq").WithRetry(5, time.Hour, time.Hour)
			p, err := es.NewProjector("perm", store, cps, rec.handle, quiet, es.WithErrorPolicy(policy))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if rec.count(rec.calls, "s0-2") != 1 || len(rec.handled) != total-1 {
				t.Fatalf("s0-2 called %d times, %d projected", rec.count(rec.calls, "s0-2"), len(rec.handled))
			}
			m := testkit.Receive(t, dlq.Messages(), 10*time.Second, "the dead letter")
			if s, _ := m.Event.Extensions()["dlqerror"].(string); !contains(s, map[string]string{"permanent": errPoison.Error(), "panic": "bad event"}[name]) {
				t.Fatalf("dlqerror %q", s)
			}
		})
	}
}

// failingPublisher refuses every publish.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, string, ...event.Event) error {
	return errors.New("broker down")
}
func (failingPublisher) Close() error { return nil }

// A dead letter that cannot be published stops the projection: no event is
// skipped without a record.
func TestProjectionStopsWhenDeadLetterFails(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	appendStreams(t, store, 1, 3)
	rec := newRecorder(func(id string, _ int) error {
		if id == "s0-2" {
			return errPoison
		}
		return nil
	})
	p, err := es.NewProjector("dlq-down", store, cps, rec.handle, quiet, es.WithErrorPolicy(es.DeadLetterOnError(failingPublisher{}, "dlq")))
	if err != nil {
		t.Fatal(err)
	}
	err = p.CatchUp(ctx)
	if !errors.Is(err, errPoison) || !contains(err.Error(), "broker down") {
		t.Fatalf("CatchUp: %v, want the handler's and the publisher's errors", err)
	}
	if cp, _, _ := cps.Load(ctx, "dlq-down"); cp != 1 || p.DeadLettered() != 0 {
		t.Fatalf("checkpoint %d, dead-lettered %d; want 1 and 0", cp, p.DeadLettered())
	}
}

// WithParallel: the events of one stream are handled in order, one at a
// time; different streams at once; each event once; the checkpoint ends
// at the head.
func TestProjectionParallelByStream(t *testing.T) {
	ctx := context.Background()
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	const streams, per = 7, 40 // 7 streams on 4 workers: a stream's positions fall on every residue
	total := appendStreams(t, store, streams, per)
	var mu sync.Mutex
	last := map[string]uint64{}
	busy := map[string]bool{}
	var problems []string
	inFlight := 0
	concurrent := make(chan struct{})
	var once sync.Once
	handled := 0
	handler := func(_ context.Context, r es.RecordedEvent) error {
		mu.Lock()
		if busy[r.StreamID] {
			problems = append(problems, "two events of "+r.StreamID+" at once")
		}
		busy[r.StreamID] = true
		if r.Version != last[r.StreamID]+1 {
			problems = append(problems, fmt.Sprintf("%s: version %d after %d", r.StreamID, r.Version, last[r.StreamID]))
		}
		last[r.StreamID] = r.Version
		handled++
		if inFlight++; inFlight >= 2 {
			once.Do(func() { close(concurrent) })
		}
		mu.Unlock()
		if r.Version == 1 {
			// The first event of each stream waits until two handlers run
			// at once: the streams are handled concurrently.
			select {
			case <-concurrent:
			case <-time.After(10 * time.Second):
				mu.Lock()
				problems = append(problems, "no two streams handled at once")
				mu.Unlock()
			}
		}
		mu.Lock()
		inFlight--
		busy[r.StreamID] = false
		mu.Unlock()
		return nil
	}
	p, err := es.NewProjector("parallel", store, cps, handler, quiet, es.WithParallel(4), es.WithCheckpointEvery(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %v", len(problems), problems[:min(5, len(problems))])
	}
	if handled != total {
		t.Fatalf("handled %d, want %d", handled, total)
	}
	if cp, _, _ := cps.Load(ctx, "parallel"); cp != uint64(total) {
		t.Fatalf("checkpoint %d, want %d", cp, total)
	}
}

func TestProjectorBadOptions(t *testing.T) {
	store, cps := memory.NewEventStore(), memory.NewCheckpointStore()
	h := func(context.Context, es.RecordedEvent) error { return nil }
	cases := map[string]struct {
		opt  es.ProjectionOption
		want string
	}{
		"parallel 0":            {es.WithParallel(0), "WithParallel"},
		"nil key":               {es.WithProjectionKey(nil), "WithProjectionKey"},
		"nil dead-letter pub":   {es.WithErrorPolicy(es.DeadLetterOnError(nil, "dlq")), "DeadLetterOnError"},
		"bad dead-letter topic": {es.WithErrorPolicy(es.DeadLetterOnError(memory.New(), "a..b")), "DeadLetterOnError"},
		"retry initial 0":       {es.WithErrorPolicy(es.RetryOnError(0, time.Second)), "RetryOnError"},
		"retry max below":       {es.WithErrorPolicy(es.StopOnError().WithRetry(3, time.Second, time.Millisecond)), "WithRetry"},
		"negative retries":      {es.WithErrorPolicy(es.StopOnError().WithRetry(-1, time.Second, time.Second)), "WithRetry"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := es.NewProjector("p", store, cps, h, c.opt)
			if !isInvalidOption(err) || !contains(err.Error(), c.want) {
				t.Fatalf("NewProjector: %v, want an invalid %s", err, c.want)
			}
		})
	}
	_, err := es.NewProjector("p", store, cps, h, es.WithParallel(2), es.WithHandlerCheckpoint())
	if !isInvalidOption(err) {
		t.Fatalf("WithParallel and WithHandlerCheckpoint: %v, want ErrInvalidOption", err)
	}
	if _, err := es.NewProjector("p", store, cps, nil); err == nil {
		t.Fatal("NewProjector with a nil handler: no error")
	}
}

// A projection that survives a poison event: the handler fails on it,
// twice more after a short wait, then the event is published to a
// dead-letter topic and the read model goes on; the checkpoint passes it.
func ExampleDeadLetterOnError() {
	ctx := context.Background()
	store, checkpoints, bus := memory.NewEventStore(), memory.NewCheckpointStore(), memory.New()
	defer bus.Close()
	dead, _ := bus.Subscribe(ctx, "projections.dlq")
	for i, sku := range []string{"apple", "???", "pear"} {
		e := event.New()
		e.SetID(fmt.Sprintf("e%d", i+1))
		e.SetSource("urn:example:shop")
		e.SetType("example.item.sold")
		e.SetSubject(sku)
		if _, err := store.Append(ctx, "sales", es.Any, e); err != nil {
			fmt.Println(err)
			return
		}
	}

	sold := map[string]int{}
	handler := func(ctx context.Context, r es.RecordedEvent) error {
		if r.Event.Subject() == "???" {
			return errors.New("unknown sku")
		}
		sold[r.Event.Subject()]++
		return nil
	}
	policy := es.DeadLetterOnError(bus, "projections.dlq").WithRetry(2, 10*time.Millisecond, 100*time.Millisecond)
	p, err := es.NewProjector("sales", store, checkpoints, handler, es.WithErrorPolicy(policy), quiet)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.CatchUp(ctx); err != nil {
		fmt.Println(err)
		return
	}
	m := <-dead.Messages()
	ext := m.Event.Extensions()
	fmt.Println("sold:", sold, "position:", p.Position())
	fmt.Println("dead letter:", m.Event.ID(), "at position", ext["dlqposition"], "after", ext["dlqattempts"], "attempts:", ext["dlqerror"])
	// Output:
	// sold: map[apple:1 pear:1] position: 3
	// dead letter: e2 at position 2 after 3 attempts: unknown sku
}
