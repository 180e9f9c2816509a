package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/saga"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testContext ends 5 minutes (in the bubble's time) after the test
// starts: four times the carrier's deadline, so that a test that waits
// for what never comes fails instead of hanging.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestFulfilment runs the shop end to end on the memory bus, in a synctest
// bubble: time only moves when every goroutine waits, so the carrier's
// deadline passes exactly when nothing else can happen, on any machine.
func TestFulfilment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := testContext(t)
		shop, err := NewShop(Config{ShipWithin: time.Minute, Stock: map[string]int{"book": 3, "lamp": 3}})
		if err != nil {
			t.Fatal(err)
		}
		if err := shop.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer shop.Stop()
		orders := map[string]Order{
			"happy":    {ID: "happy", Customer: "ada", SKU: "book", Qty: 2, Amount: 4_200, Address: "London"},
			"declined": {ID: "declined", Customer: "grace", SKU: "lamp", Qty: 1, Amount: 95_000, Address: "Arlington"},
			"deadline": {ID: "deadline", Customer: "edsger", SKU: "lamp", Qty: 2, Amount: 12_900, Address: "Atlantis"},
		}
		start := time.Now()
		for _, id := range slices.Sorted(maps.Keys(orders)) {
			if err := shop.Place(ctx, orders[id]); err != nil {
				t.Fatal(err)
			}
		}
		if err := shop.ReadModel().WaitSettled(ctx, slices.Collect(maps.Keys(orders))); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < time.Minute {
			t.Errorf("every order settled after %s: the deadline order settled before its minute", waited)
		}

		for id, want := range map[string]struct{ status, failure string }{
			"happy":    {"completed", ""},
			"declined": {"cancelled", "payment.declined: over the card limit"},
			"deadline": {"cancelled", "order.cancelled: not shipped by "},
		} {
			v, _ := shop.ReadModel().Get(id)
			if v.Status != want.status || !strings.HasPrefix(v.Failure, want.failure) || want.failure == "" && v.Failure != "" || v.Order != orders[id] {
				t.Errorf("read model of %s = %+v; want status %s, failure %q, the order placed", id, v, want.status, want.failure)
			}
		}
		if got, want := shop.Inventory().Levels(), map[string]int{"book": 1, "lamp": 3}; !maps.Equal(got, want) {
			t.Errorf("stock = %v; want %v (the happy order's 2 books gone, every lamp released)", got, want)
		}
		if got, want := shop.Payments().Charged(), map[string]int64{"happy": 4_200}; !maps.Equal(got, want) {
			t.Errorf("charged = %v; want %v (the declined order never charged, the late one refunded)", got, want)
		}

		// The saga's own record: each failure undid the completed steps,
		// last first.
		for id, want := range map[string]struct {
			status saga.Status
			kinds  []string
		}{
			"happy":    {saga.Completed, []string{"step place", "step charge", "step ship", "step done", "completed "}},
			"declined": {saga.Compensated, []string{"step place", "step charge", "failed declined", "compensated charge", "compensated place", "ended "}},
			"deadline": {saga.Compensated, []string{"step place", "step charge", "step ship", "timeout ", "compensated ship", "compensated charge", "compensated place", "ended "}},
		} {
			in, err := shop.Saga().Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, h := range in.History {
				kinds = append(kinds, h.Kind+" "+h.Step)
			}
			if in.Status != want.status || !slices.Equal(kinds, want.kinds) {
				t.Errorf("saga instance %s: %s %q; want %s %q", id, in.Status, kinds, want.status, want.kinds)
			}
		}
	})
}

// TestInvalidOrderRefused: order.place validates its command; an invalid
// order is refused to the requester and starts nothing.
func TestInvalidOrderRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shop, err := NewShop(Config{ShipWithin: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if err := shop.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer shop.Stop()
		err = shop.Place(t.Context(), Order{ID: "o", Customer: "ada", SKU: "book", Address: "London"})
		if !errors.Is(err, command.ErrInvalid) {
			t.Fatalf("Place(no quantity) = %v; want command.ErrInvalid", err)
		}
		synctest.Wait()
		if _, ok := shop.ReadModel().Get("o"); ok {
			t.Error("the refused order is in the read model")
		}
		if _, err := shop.Saga().Get(t.Context(), "o"); !errors.Is(err, saga.ErrNotFound) {
			t.Errorf("saga instance of the refused order: %v; want ErrNotFound", err)
		}
	})
}

// TestDemo runs what `go run ./examples/orders` runs.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo(testContext(t), &out, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"order-1 ada      completed      42.00",
			"order-2 grace    cancelled     950.00  payment.declined: over the card limit",
			"order-3 edsger   cancelled     129.00  order.cancelled: not shipped by",
			"order-4 barbara  completed      21.00",
			"stock left: map[book:2 chair:5 lamp:5]",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
}
