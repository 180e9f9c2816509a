package eventkit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
)

// A batch route: the handler gets up to 100 messages at once, writes them
// in one go, and fails only the one it cannot apply, which the Router
// nacks (and the transport redelivers) while it acks the others.
func ExampleRouter_HandleBatch() {
	bus := memory.New()
	defer bus.Close()

	var written []string
	done := make(chan struct{})
	r := eventkit.NewRouter(bus)
	err := r.HandleBatchFunc("meters.readings", func(ctx context.Context, msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		for _, m := range msgs {
			if m.Event.ID() == "r-3" && m.Attempt == 1 {
				failed.Fail(m, errors.New("meter unknown yet"))
				continue
			}
			written = append(written, m.Event.ID()) // in a real handler: one multi-row INSERT
		}
		if len(written) == 5 {
			close(done)
		}
		return failed.Err() // nil: every message acked
	}, eventkit.BatchSize(100), eventkit.BatchWait(50*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	readings := make([]event.Event, 5)
	for i := range readings {
		readings[i] = event.New()
		readings[i].SetID(fmt.Sprintf("r-%d", i+1))
		readings[i].SetSource("urn:example:meters")
		readings[i].SetType("example.meter.read")
	}
	if err := bus.Publish(ctx, "meters.readings", readings...); err != nil {
		fmt.Println(err)
		return
	}

	<-done
	cancel()
	fmt.Println("router stopped:", r.Wait())
	fmt.Println("written:", written)
	// Output:
	// router stopped: <nil>
	// written: [r-1 r-2 r-4 r-5 r-3]
}
