// Command memory compares eventkit's in-process bus with Watermill's
// GoChannel in one process and one run: one publisher, one subscriber that
// acks, the same 256-byte JSON payload, the same count. It prints one line
// per system (median of the rounds) and the ratio.
//
//	cd bench/memory && go run . -n 1000000 -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventkit/eventkit/internal/benchkit"
	"github.com/eventkit/eventkit/memory"
)

var payload = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

func main() {
	n := flag.Int("n", 1_000_000, "events per round")
	rounds := flag.Int("rounds", 5, "rounds per system (the median is printed)")
	flag.Parse()
	fmt.Printf("# %d events of %d bytes per round, %d rounds, GOMAXPROCS=%d, %s\n",
		*n, len(payload), *rounds, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	var ek, wm []float64
	for r := 0; r < *rounds; r++ {
		// Alternate the systems so that drift in machine load hits both.
		ek = append(ek, must(eventkitRound(*n)))
		wm = append(wm, must(watermillRound(*n)))
	}
	e, w := benchkit.Median(ek), benchkit.Median(wm)
	fmt.Printf("eventkit memory bus     %12.0f events/s  (rounds: %s)\n", e, list(ek))
	fmt.Printf("watermill gochannel     %12.0f events/s  (rounds: %s)\n", w, list(wm))
	fmt.Printf("ratio eventkit/watermill %11.1fx\n", e/w)
	benchkit.Result("eventkit", "end-to-end", e, "events/s")
	benchkit.Result("watermill", "end-to-end", w, "events/s")
	benchkit.Ratio("eventkit", "watermill", "end-to-end", e, w)
}

func must(v float64, err error) float64 {
	benchkit.Check(err)
	return v
}

func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}

func eventkitRound(n int) (float64, error) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx, "bench.orders")
	if err != nil {
		return 0, err
	}
	e := event.New()
	e.SetID("evt-1")
	e.SetSource("https://eventkit.dev/bench")
	e.SetType("dev.eventkit.bench")
	if err := e.SetData("application/json", payload); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		i := 0
		for m := range sub.Messages() {
			_ = m.Ack()
			if i++; i == n {
				return
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := bus.Publish(ctx, "bench.orders", e); err != nil {
			return 0, err
		}
	}
	<-done
	return float64(n) / time.Since(start).Seconds(), nil
}

func watermillRound(n int) (float64, error) {
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: memory.DefaultBuffer}, watermill.NopLogger{})
	defer ps.Close()
	msgs, err := ps.Subscribe(context.Background(), "bench.orders")
	if err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		i := 0
		for m := range msgs {
			m.Ack()
			if i++; i == n {
				return
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		// Watermill needs a message per publish (its ack state lives in it),
		// as eventkit makes a Message per delivery.
		if err := ps.Publish("bench.orders", message.NewMessage("evt-1", payload)); err != nil {
			return 0, err
		}
	}
	<-done
	return float64(n) / time.Since(start).Seconds(), nil
}
