package command_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

type Deposited struct {
	Amount int `json:"amount"`
}

type Account struct {
	es.Root
	Balance int
}

func (a *Account) Apply(data any) error {
	if d, ok := data.(Deposited); ok {
		a.Balance += d.Amount
	}
	return nil
}

type Deposit struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

func (d Deposit) AccountID() string { return d.Account }

func newAccounts() (*es.Repository[*Account], *memory.EventStore) {
	reg := es.NewRegistry()
	es.Register[Deposited](reg, "bank.deposited")
	store := memory.NewEventStore()
	return es.NewRepository(store, reg, func(string) *Account { return &Account{} }, es.WithStreamIDPrefix("acct-")), store
}

func TestHandleAggregateRetriesConflict(t *testing.T) {
	repo, _ := newAccounts()
	ctx := context.Background()
	var calls atomic.Int32
	handle := command.HandleAggregate(repo, Deposit.AccountID, func(a *Account, d Deposit) error {
		if calls.Add(1) == 1 {
			// Another writer saves the account between this load and its save.
			if _, err := repo.Update(ctx, a.ID(), func(o *Account) error {
				return es.Raise(o, Deposited{Amount: 100})
			}); err != nil {
				return err
			}
		}
		return es.Raise(a, Deposited{Amount: d.Amount})
	})
	if err := handle(ctx, Deposit{Account: "a1", Amount: 5}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("command ran %d times, want 2 (once more after the conflict)", n)
	}
	a, err := repo.Load(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != 105 || a.Version() != 2 {
		t.Fatalf("balance %d at version %d, want 105 at 2", a.Balance, a.Version())
	}
}

func TestHandleAggregateConflictExhausted(t *testing.T) {
	repo, _ := newAccounts()
	ctx := context.Background()
	var calls atomic.Int32
	handle := command.HandleAggregate(repo, Deposit.AccountID, func(a *Account, d Deposit) error {
		calls.Add(1)
		if _, err := repo.Update(ctx, a.ID(), func(o *Account) error { return es.Raise(o, Deposited{Amount: 1}) }); err != nil {
			return err
		}
		return es.Raise(a, Deposited{Amount: d.Amount})
	}, command.AggregateRetries(2))
	err := handle(ctx, Deposit{Account: "a1", Amount: 5})
	if !errors.Is(err, &command.Error{Code: command.CodeConflict}) {
		t.Fatalf("err = %v, want a conflict *Error", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("command ran %d times, want 3", n)
	}
}

func TestHandleAggregateThroughRequest(t *testing.T) {
	repo, _ := newAccounts()
	e := newEnv(t, func(h *command.Handlers) {
		// No id function: the aggregate is the command's subject.
		if err := command.Handle(h, "bank.deposit", command.HandleAggregate(repo, nil, func(a *Account, d Deposit) error {
			if d.Amount <= 0 {
				return command.Errorf("bad_amount", "amount must be positive")
			}
			return es.Raise(a, Deposited{Amount: d.Amount})
		})); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	for range 3 {
		if _, err := e.client.Request(ctx, "bank.deposit", Deposit{Amount: 10}, command.WithSubject("a7")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.Request(ctx, "bank.deposit", Deposit{Amount: -1}, command.WithSubject("a7")); !errors.Is(err, &command.Error{Code: "bad_amount"}) {
		t.Fatalf("err = %v, want bad_amount", err)
	}
	if _, err := e.client.Request(ctx, "bank.deposit", Deposit{Amount: 1}); !errors.Is(err, command.ErrInvalid) {
		t.Fatalf("no subject: err = %v, want ErrInvalid", err)
	}
	a, err := repo.Load(ctx, "a7")
	if err != nil || a.Balance != 30 {
		t.Fatalf("balance %d, %v; want 30", a.Balance, err)
	}
}

// A sent command that met conflicts on every attempt is returned to the
// Router for redelivery, not rejected: a conflict is transient.
func TestSentCommandConflictIsRedelivered(t *testing.T) {
	repo, _ := newAccounts()
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	h, _ := command.NewHandlers(bus)
	_ = command.Handle(h, "bank.deposit", command.HandleAggregate(repo, Deposit.AccountID, func(a *Account, d Deposit) error {
		if _, err := repo.Update(ctx, a.ID(), func(o *Account) error { return es.Raise(o, Deposited{Amount: 1}) }); err != nil {
			return err
		}
		return es.Raise(a, Deposited{Amount: d.Amount})
	}, command.AggregateRetries(0)))
	c, _ := command.NewClient(bus, nil)
	ev, _ := c.NewCommand("bank.deposit", Deposit{Account: "a1", Amount: 5})
	err := h.Handle(ctx, eventkit.NewMessage("commands.bank.deposit", ev, 1, nil, nil))
	if err == nil || eventkit.IsPermanent(err) || h.Rejected() != 0 {
		t.Fatalf("Handle = %v (rejected %d); want a retryable error", err, h.Rejected())
	}
}

// Concurrent commands on one aggregate, handled 16 at a time: the
// conflicts they meet are retried, and every deposit is saved once.
func TestHandleAggregateContention(t *testing.T) {
	repo, _ := newAccounts()
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.Handle(h, "bank.deposit", command.HandleAggregate(repo, Deposit.AccountID, func(a *Account, d Deposit) error {
			return es.Raise(a, Deposited{Amount: d.Amount})
		}))
	})
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := e.client.Request(context.Background(), "bank.deposit", Deposit{Account: "hot", Amount: i + 1}); err != nil {
				t.Errorf("deposit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	a, err := repo.Load(context.Background(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := n * (n + 1) / 2; a.Balance != want || a.Version() != n {
		t.Fatalf("balance %d at version %d, want %d at %d", a.Balance, a.Version(), want, n)
	}
}

// A command waiting for its aggregate's turn gives up when its context ends.
func TestHandleAggregateWaitEndsWithContext(t *testing.T) {
	repo, _ := newAccounts()
	inside, release := make(chan struct{}), make(chan struct{})
	handle := command.HandleAggregate(repo, Deposit.AccountID, func(a *Account, d Deposit) error {
		if d.Amount == 1 {
			close(inside)
			<-release
		}
		return es.Raise(a, Deposited{Amount: d.Amount})
	})
	errc := make(chan error, 1)
	go func() { errc <- handle(context.Background(), Deposit{Account: "a", Amount: 1}) }()
	<-inside
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := handle(ctx, Deposit{Account: "a", Amount: 2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting command: %v, want DeadlineExceeded", err)
	}
	// Another aggregate is not held up.
	if err := handle(context.Background(), Deposit{Account: "b", Amount: 3}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := handle(context.Background(), Deposit{Account: "a", Amount: 4}); err != nil {
		t.Fatal(err)
	}
	a, _ := repo.Load(context.Background(), "a")
	if a.Balance != 5 {
		t.Fatalf("balance %d, want 5", a.Balance)
	}
}
