package es_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/memory"
)

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
