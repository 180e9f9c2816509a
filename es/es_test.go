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
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				if _, err := retrying.Update(ctx, "a", func(a *Account) error { return a.Withdraw(10) }); err != nil {
					mu.Lock()
					conflicts++
					mu.Unlock()
					t.Error(err)
				}
			}
		}()
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
	if _, err := repo.Update(ctx, "s", func(a *Account) error { return es.Raise(a, Opened{Owner: "bo"}) }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ {
		if _, err := repo.Update(ctx, "s", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) }); err != nil {
			t.Fatal(err)
		}
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
		if _, err := repo.Update(ctx, id, func(a *Account) error {
			_ = es.Raise(a, Opened{Owner: id})
			return es.Raise(a, Deposited{Amount: i})
		}); err != nil {
			t.Fatal(err)
		}
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
		if _, err := repo.Update(ctx, "9", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) }); err != nil {
			t.Fatal(err)
		}
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
	if _, err := repo.Update(ctx, "1", func(a *Account) error { return es.Raise(a, Deposited{Amount: 1}) }); err != nil {
		t.Fatal(err)
	}
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
	store := memory.NewEventStore()
	cps := memory.NewCheckpointStore()
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan uint64, 100)
	p, _ := es.NewProjector("live", store, cps, func(ctx context.Context, r es.RecordedEvent) error {
		seen <- r.Position
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
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
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("projection got position %d; want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("projection did not receive the live events")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
	if cp, _, _ := cps.Load(context.Background(), "live"); cp != 5 {
		t.Fatalf("checkpoint after stop = %d; want 5", cp)
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
