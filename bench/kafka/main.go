// Command kafka compares eventkit's Kafka transport with raw franz-go and
// with Watermill's Kafka pub/sub (watermill-kafka/v3, on sarama) in one
// process and one run, on franz-go's in-process kfake cluster: 256-byte
// data, one topic of 8 partitions, first every event is produced, then a
// consumer group reads them all (acking each). Each round of each system
// gets a fresh cluster. It prints the median of the rounds per system and
// the ratios.
//
// kfake is not a production broker: it keeps the log in memory and serves
// it from one goroutine, so the absolute rates say little about a real
// cluster; the ratios between clients in the same run are what matters.
//
//	cd bench/kafka && go run . -n 200000 -rounds 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/kafka"
)

const (
	topicName  = "bench.events"
	partitions = 8
)

var payload = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

// result holds rates by wall clock (events/s) and by the process's CPU time
// (events per CPU-second, kfake's work included): on a loaded machine the
// CPU figures are the steadier comparison.
type result struct{ produce, consume, total, cpuProduce, cpuConsume float64 }

// cpuTime returns the CPU time (user+system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phase measures wall and CPU time from its creation.
type phase struct {
	wall time.Time
	cpu  time.Duration
}

func begin() phase { return phase{time.Now(), cpuTime()} }

func (p phase) end() (wall, cpu time.Duration) { return time.Since(p.wall), cpuTime() - p.cpu }

func main() {
	n := flag.Int("n", 200_000, "events per round")
	rounds := flag.Int("rounds", 3, "rounds per system (the median is printed)")
	only := flag.String("only", "", "comma-separated systems to run (eventkit,raw,raw+headers,watermill-kafka); all when empty")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("# %d events of %d bytes per round, topic of %d partitions on kfake, %d rounds, GOMAXPROCS=%d, %s\n",
		*n, len(payload), partitions, *rounds, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	systems := []struct {
		name string
		fn   func(int) (result, error)
	}{
		{"eventkit kafka", eventkitRound},
		{"raw franz-go", franzRound},
		{"raw+headers franz-go", franzHeadersRound},
		{"watermill-kafka", watermillRound},
	}
	res := make([][]result, len(systems))
	for r := 0; r < *rounds; r++ {
		// Alternate the systems so that drift in machine load hits all.
		for i, s := range systems {
			if *only != "" && !slices.Contains(strings.Split(*only, ","), strings.Fields(s.name)[0]) {
				continue
			}
			x, err := s.fn(*n)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", s.name, err)
				return
			}
			fmt.Printf("  round %d %-20s produce %9.0f/s  consume %9.0f/s  end-to-end %9.0f/s  | per CPU-second: produce %9.0f  consume %9.0f\n", r+1, s.name, x.produce, x.consume, x.total, x.cpuProduce, x.cpuConsume)
			res[i] = append(res[i], x)
		}
	}
	med := make([]result, len(systems))
	for i, s := range systems {
		if len(res[i]) == 0 {
			continue
		}
		med[i] = result{
			produce:    median(res[i], func(r result) float64 { return r.produce }),
			consume:    median(res[i], func(r result) float64 { return r.consume }),
			total:      median(res[i], func(r result) float64 { return r.total }),
			cpuProduce: median(res[i], func(r result) float64 { return r.cpuProduce }),
			cpuConsume: median(res[i], func(r result) float64 { return r.cpuConsume }),
		}
		fmt.Printf("%-20s produce %9.0f events/s  consume %9.0f events/s  end-to-end %9.0f events/s  | per CPU-second: produce %9.0f  consume %9.0f\n", s.name, med[i].produce, med[i].consume, med[i].total, med[i].cpuProduce, med[i].cpuConsume)
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for i, label := range []string{"", "eventkit / raw franz-go:        ", "eventkit / raw+headers franz-go:", "eventkit / watermill-kafka:     "} {
		if i == 0 {
			continue
		}
		fmt.Printf("%s produce %s  consume %s  end-to-end %s  | per CPU-second: produce %s  consume %s\n", label, ratio(med[0].produce, med[i].produce), ratio(med[0].consume, med[i].consume), ratio(med[0].total, med[i].total), ratio(med[0].cpuProduce, med[i].cpuProduce), ratio(med[0].cpuConsume, med[i].cpuConsume))
	}
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func rates(n int, p, c, pcpu, ccpu time.Duration) result {
	return result{produce: float64(n) / p.Seconds(), consume: float64(n) / c.Seconds(), total: float64(n) / (p + c).Seconds(),
		cpuProduce: float64(n) / pcpu.Seconds(), cpuConsume: float64(n) / ccpu.Seconds()}
}

// cluster starts a kfake cluster with the benchmark topic.
func cluster() (*kfake.Cluster, []string, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topicName))
	if err != nil {
		return nil, nil, err
	}
	return c, c.ListenAddrs(), nil
}

func eventkitRound(n int) (result, error) {
	c, brokers, err := cluster()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	tr, err := kafka.New(kafka.WithBrokers(brokers...))
	if err != nil {
		return result{}, err
	}
	defer tr.Close()
	ctx := context.Background()
	const batch = 100
	evs := make([]event.Event, n)
	for i := range evs {
		e := event.New()
		e.SetID(strconv.Itoa(i))
		e.SetSource("urn:bench")
		e.SetType("bench.event")
		e.SetDataContentType("application/json")
		e.DataEncoded = payload
		evs[i] = e
	}
	start := begin()
	for i := 0; i < n; i += batch {
		if err := tr.PublishAsync(ctx, topicName, evs[i:min(i+batch, n)], nil); err != nil {
			return result{}, err
		}
	}
	if err := tr.Flush(ctx); err != nil {
		return result{}, err
	}
	produced, producedCPU := start.end()

	start = begin()
	sub, err := tr.Subscribe(ctx, topicName, eventkit.WithGroup("bench-eventkit"), eventkit.FromStart())
	if err != nil {
		return result{}, err
	}
	for got := 0; got < n; got++ {
		m, ok := <-sub.Messages()
		if !ok {
			return result{}, fmt.Errorf("subscription ended after %d: %v", got, sub.Err())
		}
		_ = m.Ack()
	}
	consumed, consumedCPU := start.end()
	_ = sub.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU), nil
}

func franzRound(n int) (result, error) { return franz(n, false) }

// franzHeadersRound produces records that carry the same CloudEvents
// binary-mode headers as eventkit's (the like-for-like baseline); the
// consumer reads them without decoding.
func franzHeadersRound(n int) (result, error) { return franz(n, true) }

func franz(n int, headers bool) (result, error) {
	c, brokers, err := cluster()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	ctx := context.Background()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return result{}, err
	}
	defer prod.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topicName, Value: payload}
		if headers {
			recs[i].Headers = []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(strconv.Itoa(i))},
				{Key: "ce_source", Value: []byte("urn:bench")}, {Key: "ce_type", Value: []byte("bench.event")},
				{Key: "content-type", Value: []byte("application/json")},
			}
		}
	}
	start := begin()
	var perr error
	for _, r := range recs {
		prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		return result{}, err
	}
	if perr != nil {
		return result{}, perr
	}
	produced, producedCPU := start.end()

	start = begin()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topicName), kgo.ConsumerGroup("bench-franz"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return result{}, errs[0].Err
		}
		got += fs.NumRecords()
	}
	consumed, consumedCPU := start.end()
	_ = cons.CommitUncommittedOffsets(ctx)
	cons.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU), nil
}

func watermillRound(n int) (result, error) {
	c, brokers, err := cluster()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	logger := watermill.NopLogger{}
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: brokers, Marshaler: wmkafka.DefaultMarshaler{}}, logger)
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	const batch = 100
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(strconv.Itoa(i), payload)
	}
	start := begin()
	for i := 0; i < n; i += batch {
		if err := pub.Publish(topicName, msgs[i:min(i+batch, n)]...); err != nil {
			return result{}, err
		}
	}
	produced, producedCPU := start.end()

	start = begin()
	cfg := wmkafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
		Brokers: brokers, Unmarshaler: wmkafka.DefaultMarshaler{}, ConsumerGroup: "bench-watermill", OverwriteSaramaConfig: cfg,
	}, logger)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topicName)
	if err != nil {
		cancel()
		return result{}, err
	}
	for got := 0; got < n; got++ {
		m, ok := <-ch
		if !ok {
			cancel()
			return result{}, fmt.Errorf("watermill subscription ended after %d", got)
		}
		m.Ack()
	}
	consumed, consumedCPU := start.end()
	cancel()
	_ = sub.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU), nil
}
