package eventkit_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
	"github.com/google/uuid"
)

type Order struct{ ID string }

// tour is the README's tour, verbatim between the markers
// (TestREADMETourMatchesREADME checks it); ctx, order and charge are what
// the README's go:prelude declares.
func tour(ctx context.Context, order Order, charge func(context.Context, Order) error) error {
	// tour:begin
	bus := memory.New() // or nats.New(...), kafka.Dial(...), ...
	defer bus.Close()

	r := eventkit.NewRouter(bus)
	r.Use(middleware.DeadLetter(bus), middleware.Retry())
	r.Handle("orders.*.placed", eventkit.Typed(func(ctx context.Context, m *eventkit.Message, o Order) error {
		return charge(ctx, o) // nil acks; an error nacks (retry, then dead letter)
	}), eventkit.RouteGroup("payments"), eventkit.Concurrency(8), eventkit.OrderedByKey())
	if err := r.Start(ctx); err != nil { // returns once every route is subscribed
		return err
	}

	e := event.New()
	e.SetID(uuid.NewString())
	e.SetSource("urn:shop")
	e.SetType("shop.order.placed")
	e.SetExtension("partitionkey", order.ID) // events of one order stay in order
	_ = e.SetData(event.ApplicationJSON, order)
	if err := bus.Publish(ctx, "orders.eu.placed", e); err != nil { // validated against the CloudEvents rules first
		return err
	}
	return r.Wait() // handles events until ctx ends (or r.Shutdown), then shuts down gracefully
	// tour:end
}

// TestREADMETour runs the tour: the order published must be charged. The
// handler ends the tour's context once it has charged, so Wait returns; if
// the event is lost the tour ends at the test's deadline and the test fails.
func TestREADMETour(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var charged []Order
	charge := func(_ context.Context, o Order) error {
		charged = append(charged, o) // Wait orders this before the read below
		cancel()
		return nil
	}
	if err := tour(ctx, Order{ID: "o-1"}, charge); err != nil {
		t.Fatalf("tour: %v", err)
	}
	if len(charged) != 1 || charged[0].ID != "o-1" {
		t.Fatalf("the tour's event was lost: charged %v, want [{o-1}]", charged)
	}
}

// TestREADMETourMatchesREADME checks that tour holds the README's tour.
func TestREADMETourMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("tour_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(readme, []byte("## A five-minute tour"))
	if !ok {
		t.Fatal("README.md has no tour section")
	}
	_, after, _ = bytes.Cut(after, []byte("```go\n"))
	block, _, ok := bytes.Cut(after, []byte("```"))
	if !ok {
		t.Fatal("README.md: the tour has no go block")
	}
	_, after, _ = bytes.Cut(src, []byte("// tour:begin\n"))
	code, _, ok := bytes.Cut(after, []byte("// tour:end"))
	if !ok {
		t.Fatal("tour_test.go: no tour markers")
	}
	if got, want := normalize(string(code)), normalize(string(block)); got != want {
		t.Fatalf("tour_test.go's tour differs from README.md's:\n--- tour_test.go\n%s\n--- README.md\n%s", got, want)
	}
}

// normalize drops indentation and the spacing gofmt changes (the space
// before a line comment), and blank lines.
func normalize(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if code, comment, ok := strings.Cut(line, "//"); ok {
			line = strings.TrimSpace(code) + " //" + comment
		}
		out = append(out, strings.Join(strings.Fields(line), " "))
	}
	return strings.Join(out, "\n")
}
