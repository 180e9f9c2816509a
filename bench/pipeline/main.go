// Command pipeline compares eventkit's pipeline package with Benthos v4
// (github.com/redpanda-data/benthos/v4, used as a library) on the same
// in-memory flow, in one process and one run, systems interleaved round by
// round:
//
//	in-memory input → filter (total >= 100: half the events)
//	                → transform (total doubled, "big": true) → counting output
//
// Event data is JSON {"id": "o-<i>", "total": i % 200}. eventkit runs it two
// ways: Go functions (encoding/json) and CEL (pipeline/pipecel); Benthos
// runs it with Bloblang mappings. The comparison is kept fair both ways:
//
//   - the same input: 16 goroutines push batches of 64 events, each call
//     returning once its batch was settled (Benthos's batch producer
//     function; eventkit's pipeline.Feed, its in-process input with the same
//     guarantee); the events are made before the clock starts;
//   - the same batching: Benthos moves each batch of 64 through its
//     processors as one unit; eventkit hands events between stages in
//     batches of up to 64 (WithQueue(256): a quarter of the bound);
//   - the same parallelism: 2 workers per eventkit stage, 2 pipeline
//     threads for Benthos;
//   - the same output: a function called per event that reads the event's
//     data as bytes (Benthos keeps a mapping's result as a structured value
//     and serializes it only when asked: its output asks, as any real
//     output would);
//   - the same measure: wall clock and the process's CPU time from the
//     first event in to the last one settled, rounds interleaved.
//
// It prints each round, the medians, and the lines bench/report reads
// (internal/benchkit):
//
//	RATIO eventkit/benthos throughput=<x>
//	RATIO eventkit/benthos cpu=<y>
//
// (Go functions against Bloblang; cpu is eventkit's CPU per event over
// Benthos's, lower is better), and the same for CEL (eventkit-cel).
// -quick runs a short version.
//
//	cd bench/pipeline && go run . -n 200000 -rounds 3
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/internal/benchkit"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipecel"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// result is one round of one system: events in per second, and the
// process's CPU time per input event.
type result struct{ rate, cpu float64 }

func main() {
	n := flag.Int("n", 200000, "events per round")
	rounds := flag.Int("rounds", 3, "rounds per system")
	quick := flag.Bool("quick", false, "a short run: 20,000 events, 1 round")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of every round to `file`, labelled system=<name> (pprof -tagfocus)")
	only := flag.String("only", "", "run only the systems whose name starts with this")
	flag.Parse()
	if *quick {
		*n, *rounds = 20000, 1
	}
	systems := []system{
		{"eventkit-go", func(n int) (result, error) { return runEventkit(n, goStages()) }},
		{"eventkit-cel", func(n int) (result, error) { return runEventkit(n, celStages()) }},
		{"benthos", runBenthos},
	}
	if *only != "" {
		systems = slices.DeleteFunc(systems, func(s system) bool { return !strings.HasPrefix(s.name, *only) })
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	res := map[string][]result{}
	for r := range *rounds {
		for _, s := range systems {
			var out result
			var err error
			// The label lets one profile be split by system:
			// go tool pprof -tagfocus system=benthos ...
			pprof.Do(context.Background(), pprof.Labels("system", s.name), func(context.Context) {
				out, err = s.run(*n)
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, s.name+":", err)
				os.Exit(1)
			}
			res[s.name] = append(res[s.name], out)
			fmt.Printf("round %d %-13s %10.0f events/s %8.2f µs CPU/event\n", r+1, s.name, out.rate, out.cpu)
		}
	}
	med := map[string]result{}
	for _, s := range systems {
		med[s.name] = median(res[s.name])
		fmt.Printf("median  %-13s %10.0f events/s %8.2f µs CPU/event\n", s.name, med[s.name].rate, med[s.name].cpu)
	}
	for _, s := range systems {
		benchkit.Result(s.name, "throughput", med[s.name].rate, "events/s")
		benchkit.Result(s.name, "cpu", med[s.name].cpu, "µs/event")
	}
	b, ok := med["benthos"]
	if !ok {
		return
	}
	for _, x := range [][2]string{{"eventkit-go", "eventkit"}, {"eventkit-cel", "eventkit-cel"}} {
		benchkit.Ratio(x[1], "benthos", "throughput", med[x[0]].rate, b.rate)
		benchkit.Ratio(x[1], "benthos", "cpu", med[x[0]].cpu, b.cpu)
	}
}

type system struct {
	name string
	run  func(n int) (result, error)
}

func median(rs []result) result {
	rates, cpus := make([]float64, len(rs)), make([]float64, len(rs))
	for i, r := range rs {
		rates[i], cpus[i] = r.rate, r.cpu
	}
	return result{benchkit.Median(rates), benchkit.Median(cpus)}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs f and returns the rate and CPU per event of n events.
func measure(n int, f func() error) (result, error) {
	cpu0, t0 := cpuTime(), time.Now()
	if err := f(); err != nil {
		return result{}, err
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	return result{rate: float64(n) / wall.Seconds(), cpu: float64(cpu.Microseconds()) / float64(n)}, nil
}

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
	Big   bool   `json:"big,omitempty"`
}

// kept is the number of events of n the filter keeps.
func kept(n int) int {
	k := 0
	for i := range n {
		if i%200 >= 100 {
			k++
		}
	}
	return k
}

func payload(i int) []byte {
	return []byte(`{"id":"o-` + strconv.Itoa(i) + `","total":` + strconv.Itoa(i%200) + `}`)
}

// goStages are the filter and the transform as Go functions.
func goStages() []*pipeline.Stage {
	return []*pipeline.Stage{
		pipeline.Filter("filter", func(e event.Event) (bool, error) {
			var o order
			if err := json.Unmarshal(e.Data(), &o); err != nil {
				return false, err
			}
			return o.Total >= 100, nil
		}, pipeline.Workers(2)),
		pipeline.Map("transform", func(_ context.Context, e event.Event) (event.Event, error) {
			var o order
			if err := json.Unmarshal(e.Data(), &o); err != nil {
				return e, err
			}
			o.Total *= 2
			o.Big = true
			b, err := json.Marshal(o)
			if err != nil {
				return e, err
			}
			e.DataEncoded = b
			return e, nil
		}, pipeline.Workers(2)),
	}
}

// celStages are the filter and the transform as CEL expressions.
func celStages() []*pipeline.Stage {
	f, err := pipecel.Filter("filter", "data.total >= 100.0", pipeline.Workers(2))
	check(err)
	m, err := pipecel.Map("transform", "{'id': data.id, 'total': data.total * 2.0, 'big': true}", "", pipeline.Workers(2))
	check(err)
	return []*pipeline.Stage{f, m}
}

func runEventkit(n int, stages []*pipeline.Stage) (result, error) {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(1024))
	defer feed.Close()
	var out atomic.Int64
	p := pipeline.New(pipeline.WithMaxInFlight(1024), pipeline.WithQueue(256))
	node := p.From(pipeline.Source{Subscriber: feed})
	for _, s := range stages {
		node = node.Then(s)
	}
	var bytes atomic.Int64
	node.Then(pipeline.Sink("count", func(_ context.Context, e event.Event) error {
		bytes.Add(int64(len(e.Data())))
		out.Add(1)
		return nil
	}))
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		return result{}, err
	}
	events := make([]event.Event, n)
	for i := range events {
		events[i] = orderEvent(i)
	}
	r, err := measure(n, func() error {
		if err := produce(n, func(i, j int) error { return feed.Publish(ctx, "in", events[i:j]...) }); err != nil {
			return err
		}
		return p.Shutdown(ctx)
	})
	if err == nil {
		err = checkOut("eventkit", n, out.Load(), bytes.Load())
	}
	return r, err
}

// produce feeds events [0, n) in batches of 64 from 16 goroutines, each
// call returning when its batch was settled; both systems get their input
// this way.
func produce(n int, publish func(i, j int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(64)) - 64
				if i >= n {
					return
				}
				if err := publish(i, min(i+64, n)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// orderEvent is the i-th input event of eventkit's runs.
func orderEvent(i int) event.Event {
	e := event.New()
	e.Context = &event.EventContextV1{ID: strconv.Itoa(i), Type: "order.placed", DataContentType: ptr(event.ApplicationJSON)}
	e.SetSource("bench")
	e.DataEncoded = payload(i)
	return e
}

func ptr[T any](v T) *T { return &v }

// The Benthos processors: Bloblang mappings.
var benthosProcessors = []string{
	`mapping: 'root = if this.total < 100 { deleted() } else { this }'`,
	"mapping: |\n  root = this\n  root.total = this.total * 2\n  root.big = true\n",
}

func runBenthos(n int) (result, error) {
	b := service.NewStreamBuilder()
	b.SetThreads(2)
	if err := b.SetLoggerYAML("level: none"); err != nil {
		return result{}, err
	}
	for _, p := range benthosProcessors {
		if err := b.AddProcessorYAML(p); err != nil {
			return result{}, err
		}
	}
	send, err := b.AddBatchProducerFunc()
	if err != nil {
		return result{}, err
	}
	var out atomic.Int64
	var bytes atomic.Int64
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		data, err := m.AsBytes()
		bytes.Add(int64(len(data)))
		out.Add(1)
		return err
	}); err != nil {
		return result{}, err
	}
	stream, err := b.Build()
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	batches := make([]service.MessageBatch, 0, n/64+1)
	for i := 0; i < n; i += 64 {
		var batch service.MessageBatch
		for j := i; j < min(i+64, n); j++ {
			batch = append(batch, service.NewMessage(payload(j)))
		}
		batches = append(batches, batch)
	}
	r, err := measure(n, func() error {
		return produce(n, func(i, _ int) error { return send(ctx, batches[i/64]) })
	})
	if err != nil {
		return r, err
	}
	if err := stream.StopWithin(10 * time.Second); err != nil {
		return r, err
	}
	<-done
	return r, checkOut("benthos", n, out.Load(), bytes.Load())
}

// checkOut checks that a system's output is what the flow gives for n
// events: the kept events, and their data (the same JSON from both, as
// long as Bloblang and encoding/json order the fields alike: checked by
// size).
func checkOut(system string, n int, out, bytes int64) error {
	want := int64(0)
	for i := range n {
		if i%200 >= 100 {
			b, _ := json.Marshal(order{ID: "o-" + strconv.Itoa(i), Total: 2 * (i % 200), Big: true})
			want += int64(len(b))
		}
	}
	if out != int64(kept(n)) || bytes != want {
		return fmt.Errorf("%s: %d events out with %d bytes of data, want %d with %d", system, out, bytes, kept(n), want)
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
