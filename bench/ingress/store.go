package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/benchkit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runStoreMode measures the embedded JetStream file store without HTTP, set
// up as "eventkit serve" sets it up (in-process connection, one file-backed
// stream on events.>, 7 days of retention), with the events of the batch
// mode (binary-mode CloudEvents headers and a Nats-Msg-Id):
//
//   - raw: nats.go's PublishMsgAsync of messages built before the clock
//     starts, at most 4096 awaiting their ack (the transport's default),
//     then the wait for every ack: the store's ceiling for this client.
//   - transport: eventkit's nats Transport.Publish of the same events as
//     event.Event values, 500 per call from 8 goroutines (what the batch
//     mode does after decoding the HTTP requests).
//
// It returns the raw run's median rate and CPU time per event.
func runStoreMode(n, runs int, data string) (ceiling, ceilingCPU float64) {
	dir, err := os.MkdirTemp("", "eventkit-bench-store-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	emb, err := natsserver.Run(natsserver.WithStoreDir(dir))
	if err != nil {
		fatal(err)
	}
	defer emb.Shutdown(context.Background())
	nc, err := emb.Connect()
	if err != nil {
		fatal(err)
	}
	defer nc.Close()
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{
		Name: "EVENTKIT", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: 7 * 24 * time.Hour,
	}))
	if err != nil {
		fatal(err)
	}
	defer tr.Close()
	if err := tr.EnsureStreams(context.Background()); err != nil { // New does no I/O
		fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		fatal(err)
	}
	fmt.Printf("# embedded JetStream file store, in-process connection, %d events per run, data %d bytes, GOMAXPROCS %d, load average %s\n",
		n, len(data), runtime.GOMAXPROCS(0), loadavg())
	const subject = "events.bench.ingress.batch"
	mkEvents := func(run int, kind string) []event.Event {
		evs := make([]event.Event, n)
		for i := range evs {
			e := event.New()
			e.SetID(kind + strconv.Itoa(run) + "-" + strconv.Itoa(i))
			e.SetSource("/bench/ingress")
			e.SetType("bench.ingress.batch")
			e.SetDataContentType("application/json")
			e.DataEncoded = []byte(data)
			evs[i] = e
		}
		return evs
	}
	for _, kind := range []string{"raw", "transport"} {
		var rates []float64
		var cpus []float64
		for r := 0; r < runs; r++ {
			evs := mkEvents(r, kind)
			var start time.Time
			var cpu0 time.Duration
			switch kind {
			case "raw":
				msgs := make([]*nats.Msg, n)
				for i := range evs {
					m, err := eknats.EncodeMsg(subject, evs[i], eventkit.Binary)
					if err != nil {
						fatal(err)
					}
					m.Header[nats.MsgIdHdr] = []string{eknats.DefaultMsgID(subject, evs[i].ID(), evs[i].Source())}
					msgs[i] = m
				}
				runtime.GC()
				start, cpu0 = time.Now(), benchkit.CPUTime()
				futures := make([]jetstream.PubAckFuture, n)
				for i := range msgs {
					f, err := js.PublishMsgAsync(msgs[i], jetstream.WithStallWait(time.Minute))
					if err != nil {
						fatal(err)
					}
					futures[i] = f
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						fatal(err)
					}
				}
			case "transport":
				runtime.GC()
				start, cpu0 = time.Now(), benchkit.CPUTime()
				var wg sync.WaitGroup
				var next sync.Mutex
				pos := 0
				for w := 0; w < 8; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							next.Lock()
							lo := pos
							pos = min(pos+500, n)
							hi := pos
							next.Unlock()
							if lo >= hi {
								return
							}
							if err := tr.Publish(context.Background(), subject, evs[lo:hi]...); err != nil {
								fatal(err)
							}
						}
					}()
				}
				wg.Wait()
			}
			el := time.Since(start)
			cpu := benchkit.CPUTime() - cpu0
			rate := float64(n) / el.Seconds()
			perEvent := float64(cpu.Microseconds()) / float64(n)
			rates, cpus = append(rates, rate), append(cpus, perEvent)
			fmt.Printf("store %-9s run %d: %9.0f events/s stored and acked (%s); process CPU %.1f µs/event\n", kind, r+1, rate, el.Round(time.Millisecond), perEvent)
		}
		slices.SortFunc(rates, cmp.Compare)
		slices.SortFunc(cpus, cmp.Compare)
		fmt.Printf("store %-9s median: %9.0f events/s, process CPU %.1f µs/event   [load average %s]\n", kind, rates[len(rates)/2], cpus[len(cpus)/2], loadavg())
		system := map[string]string{"raw": "store-ceiling", "transport": "eventkit-nats-transport"}[kind]
		benchkit.Result(system, "store", rates[len(rates)/2], "events/s")
		benchkit.Result(system, "store-cpu", cpus[len(cpus)/2], "µs/event")
		if kind == "raw" {
			ceiling, ceilingCPU = rates[len(rates)/2], cpus[len(cpus)/2]
		}
	}
	return ceiling, ceilingCPU
}
