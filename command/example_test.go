package command_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

type PlaceOrder struct {
	OrderID string `json:"orderId"`
	Qty     int    `json:"qty"`
}

// Validate rejects a command before its handler runs.
func (p PlaceOrder) Validate() error {
	if p.Qty <= 0 {
		return errors.New("qty must be positive")
	}
	return nil
}

type Placed struct {
	OrderID string `json:"orderId"`
	Total   int    `json:"total"`
}

// Request/reply over the memory bus: a typed handler, a typed request, a
// validation failure and a business error coming back as *command.Error.
func Example() {
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()

	// The service: one handler per command type, mounted on a router.
	h, _ := command.NewHandlers(bus)
	_ = command.HandleReply(h, "order.place", func(ctx context.Context, p PlaceOrder) (Placed, error) {
		if p.OrderID == "sold-out" {
			return Placed{}, command.Errorf("out_of_stock", "nothing left for %s", p.OrderID)
		}
		return Placed{OrderID: p.OrderID, Total: 12 * p.Qty}, nil
	})
	r := eventkit.NewRouter(bus)
	_ = h.Mount(r)
	_ = r.Start(ctx)
	defer r.Shutdown(ctx)

	// The caller.
	c, _ := command.NewClient(bus, bus, command.WithTimeout(5*time.Second))
	defer c.Close()

	placed, err := command.Request[Placed](ctx, c, "order.place", PlaceOrder{OrderID: "o1", Qty: 2})
	fmt.Println(placed.Total, err)

	_, err = c.Request(ctx, "order.place", PlaceOrder{OrderID: "o2"})
	fmt.Println(errors.Is(err, command.ErrInvalid), err)

	_, err = c.Request(ctx, "order.place", PlaceOrder{OrderID: "sold-out", Qty: 1})
	var ce *command.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Code)
	}

	_, err = c.Request(ctx, "order.cancel", nil)
	fmt.Println(errors.Is(err, command.ErrUnknownCommand))
	// Output:
	// 24 <nil>
	// true command: invalid_argument: qty must be positive
	// out_of_stock
	// true
}

// A command handled by an event-sourced aggregate (Account, raising
// Deposited on a Deposit): the command's subject names the account; a
// version conflict reloads it and runs again.
func ExampleHandleAggregate() {
	ctx := context.Background()
	reg := es.NewRegistry()
	es.Register[Deposited](reg, "bank.deposited")
	accounts := es.NewRepository(memory.NewEventStore(), reg, func(string) *Account { return &Account{} })

	bus := memory.New()
	defer bus.Close()
	h, _ := command.NewHandlers(bus)
	_ = command.Handle(h, "bank.deposit", command.HandleAggregate(accounts, nil,
		func(a *Account, d Deposit) error { return es.Raise(a, Deposited{Amount: d.Amount}) }))
	r := eventkit.NewRouter(bus)
	_ = h.Mount(r)
	_ = r.Start(ctx)
	defer r.Shutdown(ctx)

	c, _ := command.NewClient(bus, bus)
	defer c.Close()
	for _, amount := range []int{5, 7} {
		if _, err := c.Request(ctx, "bank.deposit", Deposit{Amount: amount}, command.WithSubject("a1")); err != nil {
			fmt.Println(err)
		}
	}
	a, _ := accounts.Load(ctx, "a1")
	fmt.Println(a.Balance, a.Version())
	// Output: 12 2
}

// Send is fire and forget: it returns once the transport has the command.
func ExampleClient_Send() {
	ctx := context.Background()
	bus := memory.New()
	defer bus.Close()
	done := make(chan struct{})
	h, _ := command.NewHandlers(bus)
	_ = command.Handle(h, "mail.send", func(ctx context.Context, to string) error {
		fmt.Println("mail to", to)
		close(done)
		return nil
	})
	r := eventkit.NewRouter(bus)
	_ = h.Mount(r)
	_ = r.Start(ctx)
	defer r.Shutdown(ctx)

	c, _ := command.NewClient(bus, nil) // Send only: no replies
	_ = c.Send(ctx, "mail.send", "ada@example.com")
	<-done
	// Output: mail to ada@example.com
}
