// Command kafka compares eventkit's Kafka transport with raw franz-go and
// with Watermill's Kafka pub/sub (watermill-kafka/v3, on sarama) in one
// process and one run, on franz-go's in-process kfake cluster: 256-byte
// data, one topic of 8 partitions, first every event is produced, then a
// consumer group reads them all (acking each). Each round of each system
// gets a fresh cluster, and the systems take turns round by round. It
// prints each round, the median of the rounds per system and the ratios of
// each eventkit line to each other line.
//
// The systems: eventkit in binary mode (the default) and in structured
// mode; raw franz-go producing bare values; raw franz-go producing the same
// five CloudEvents headers as eventkit's binary mode and parsing them back
// into the same event (the like-for-like baseline: what a user of raw
// franz-go writes to get the event eventkit hands out; -bare-headers only
// counts the records); the same with eventkit's client settings; Watermill.
// eventkit and Watermill are handed events (messages) made before the
// produce clock starts and make their records while it runs; so does raw
// franz-go, from ids made before.
//
// Besides wall-clock rates it prints events per CPU-second of the whole
// process (kfake included), the time from the start of consuming to the
// first record in hand, and the heap allocations of the process per event.
// -cpuprofile PREFIX writes a CPU profile of every timed phase.
//
// kfake is not a production broker: it keeps the log in memory and serves
// it from one goroutine, so the absolute rates say little about a real
// cluster; the ratios between clients in the same run are what matters.
// -brokers runs every round on a real cluster instead (Apache Kafka, as
// scripts/services.sh starts it on 127.0.0.1:9092), each round on a new
// topic of 8 partitions that is deleted after it.
//
//	cd bench/kafka && go run . -n 200000 -rounds 7
//	cd bench/kafka && go run . -brokers 127.0.0.1:9092 -n 50000 -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/benchkit"
	"github.com/eventkit/eventkit/kafka"
)

const partitions = 8

var (
	topicName   = "bench.events" // a new name per round with -brokers
	realBrokers string           // -brokers
)

var payload = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

// result holds rates by wall clock (events/s) and by the process's CPU time
// (events per CPU-second, kfake's work included): on a loaded machine the
// CPU figures are the steadier comparison.
type result struct {
	produce, consume, total, cpuProduce, cpuConsume float64
	first                                           time.Duration // from the start of consuming to the first record in hand
}

// phase measures wall and CPU time from its creation, and the heap
// allocations made meanwhile; with -cpuprofile it profiles the phase alone.
type phase struct {
	wall    time.Time
	cpu     time.Duration
	mallocs uint64
	bytes   uint64
	prof    *os.File
}

var (
	profPrefix string // -cpuprofile
	profRound  int
	allocs     = map[string][2]float64{} // "system/phase" -> allocations and bytes per event (last round)
)

func begin(system, name string) phase {
	var p phase
	if profPrefix != "" {
		f, err := os.Create(fmt.Sprintf("%s.%s.%s.r%d.prof", profPrefix, strings.ReplaceAll(strings.Fields(system)[0], "+", "_"), name, profRound))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			p.prof = f
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.mallocs, p.bytes = ms.Mallocs, ms.TotalAlloc
	p.wall, p.cpu = time.Now(), benchkit.CPUTime()
	return p
}

func (p phase) end(system, name string, n int) (wall, cpu time.Duration) {
	wall, cpu = time.Since(p.wall), benchkit.CPUTime()-p.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs[system+"/"+name] = [2]float64{float64(ms.Mallocs-p.mallocs) / float64(n), float64(ms.TotalAlloc-p.bytes) / float64(n)}
	if p.prof != nil {
		pprof.StopCPUProfile()
		_ = p.prof.Close()
	}
	return wall, cpu
}

func main() {
	n := flag.Int("n", 200_000, "events per round")
	rounds := flag.Int("rounds", 3, "rounds per system (the median is printed)")
	only := flag.String("only", "", "comma-separated systems to run (eventkit,eventkit-structured,raw,raw+headers,raw+hdr+settings,watermill-kafka); all when empty")
	flag.StringVar(&realBrokers, "brokers", "", "comma-separated brokers of a real Kafka cluster to run on instead of kfake")
	flag.BoolVar(&bareHeaders, "bare-headers", false, "raw+headers peers count the records without decoding their headers into events")
	flag.StringVar(&profPrefix, "cpuprofile", "", "write a CPU profile of each timed phase to PREFIX.SYSTEM.PHASE.rROUND.prof")
	flag.Parse()
	on := "kfake"
	if realBrokers != "" {
		on = realBrokers
	}
	fmt.Printf("# %d events of %d bytes per round, topic of %d partitions on %s, %d rounds, GOMAXPROCS=%d, %s\n",
		*n, len(payload), partitions, on, *rounds, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	systems := []struct {
		name string
		fn   func(int) (result, error)
	}{
		{"eventkit kafka", eventkitRound},
		{"eventkit-structured kafka", eventkitStructuredRound},
		{"raw franz-go", franzRound},
		{"raw+headers franz-go", franzHeadersRound},
		{"raw+hdr+settings franz-go", franzSettingsRound},
		{"watermill-kafka", watermillRound},
	}
	res := make([][]result, len(systems))
	for r := 0; r < *rounds; r++ {
		profRound = r + 1
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
			pa, ca := allocs[s.name+"/produce"], allocs[s.name+"/consume"]
			fmt.Printf("  round %d %-25s produce %9.0f/s  consume %9.0f/s  end-to-end %9.0f/s  | per CPU-second: produce %9.0f  consume %9.0f  | first record after %4.0f ms  | allocs/event: produce %.1f (%.0f B)  consume %.1f (%.0f B)\n",
				r+1, s.name, x.produce, x.consume, x.total, x.cpuProduce, x.cpuConsume, float64(x.first)/float64(time.Millisecond), pa[0], pa[1], ca[0], ca[1])
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
			first:      time.Duration(median(res[i], func(r result) float64 { return float64(r.first) })),
		}
		fmt.Printf("%-25s produce %9.0f events/s  consume %9.0f events/s  end-to-end %9.0f events/s  | per CPU-second: produce %9.0f  consume %9.0f  | first record after %4.0f ms\n",
			s.name, med[i].produce, med[i].consume, med[i].total, med[i].cpuProduce, med[i].cpuConsume, float64(med[i].first)/float64(time.Millisecond))
	}
	// Each eventkit line against each other system: the median of the
	// ratios of each round, whose systems ran back to back, which drift in
	// the machine's load disturbs less than a ratio of medians.
	fmt.Println("ratios (median of the per-round ratios):")
	var ratios []func() // the RATIO lines, written after the RESULT lines
	for i, a := range systems {
		if !strings.HasPrefix(a.name, "eventkit") || len(res[i]) == 0 {
			continue
		}
		for j, b := range systems {
			if strings.HasPrefix(b.name, "eventkit") || len(res[j]) == 0 {
				continue
			}
			rr := make([]result, min(len(res[i]), len(res[j])))
			for k := range rr {
				x, y := res[i][k], res[j][k]
				rr[k] = result{produce: x.produce / y.produce, consume: x.consume / y.consume, total: x.total / y.total,
					cpuProduce: x.cpuProduce / y.cpuProduce, cpuConsume: x.cpuConsume / y.cpuConsume}
			}
			m := func(f func(result) float64) string { return fmt.Sprintf("%.2f", median(rr, f)) }
			fmt.Printf("%-48s produce %s  consume %s  end-to-end %s  | per CPU-second: produce %s  consume %s\n", a.name+" / "+b.name+":",
				m(func(r result) float64 { return r.produce }), m(func(r result) float64 { return r.consume }), m(func(r result) float64 { return r.total }),
				m(func(r result) float64 { return r.cpuProduce }), m(func(r result) float64 { return r.cpuConsume }))
			ratios = append(ratios, func() {
				an, bn := strings.Fields(a.name)[0], strings.Fields(b.name)[0]
				for _, x := range []struct {
					measure string
					f       func(result) float64
				}{
					{"produce", func(r result) float64 { return r.produce }},
					{"consume", func(r result) float64 { return r.consume }},
					{"end-to-end", func(r result) float64 { return r.total }},
					{"produce-per-cpu", func(r result) float64 { return r.cpuProduce }},
					{"consume-per-cpu", func(r result) float64 { return r.cpuConsume }},
				} {
					benchkit.Ratio(an, bn, x.measure, median(rr, x.f), 1)
				}
			})
		}
	}
	for i, s := range systems {
		if len(res[i]) == 0 {
			continue
		}
		name := strings.Fields(s.name)[0]
		benchkit.Result(name, "produce", med[i].produce, "events/s")
		benchkit.Result(name, "consume", med[i].consume, "events/s")
		benchkit.Result(name, "end-to-end", med[i].total, "events/s")
		benchkit.Result(name, "produce-cpu", 1e6/med[i].cpuProduce, "µs/event")
		benchkit.Result(name, "consume-cpu", 1e6/med[i].cpuConsume, "µs/event")
	}
	for _, r := range ratios {
		r()
	}
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return benchkit.Median(v)
}

func rates(n int, p, c, pcpu, ccpu, first time.Duration) result {
	return result{produce: float64(n) / p.Seconds(), consume: float64(n) / c.Seconds(), total: float64(n) / (p + c).Seconds(),
		cpuProduce: float64(n) / pcpu.Seconds(), cpuConsume: float64(n) / ccpu.Seconds(), first: first}
}

// cluster starts a kfake cluster with the benchmark topic or, with
// -brokers, creates a new benchmark topic on the real cluster; Close ends
// the one or deletes the other.
func cluster() (io.Closer, []string, error) {
	if realBrokers != "" {
		return realTopic(strings.Split(realBrokers, ","))
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topicName))
	if err != nil {
		return nil, nil, err
	}
	return closer(func() error { c.Close(); return nil }), c.ListenAddrs(), nil
}

type closer func() error

func (c closer) Close() error { return c() }

var rounds int

// realTopic creates the round's topic on brokers (the broker's default
// replication factor) and waits until every partition has a leader.
func realTopic(brokers []string) (io.Closer, []string, error) {
	rounds++
	topicName = fmt.Sprintf("bench.events.%d.%d", time.Now().UnixNano(), rounds)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topicName); err != nil {
		cl.Close()
		return nil, nil, err
	}
	for {
		td, err := adm.ListTopics(ctx, topicName)
		if err == nil && td[topicName].Err == nil && len(td[topicName].Partitions) == partitions {
			ready := true
			for _, p := range td[topicName].Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0
			}
			if ready {
				break
			}
		}
		select {
		case <-ctx.Done():
			cl.Close()
			return nil, nil, fmt.Errorf("topic %s not ready: %w", topicName, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	name := topicName
	return closer(func() error {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := adm.DeleteTopics(ctx, name)
		return err
	}), brokers, nil
}

func eventkitRound(n int) (result, error) { return eventkitMode(n, false) }

// eventkitStructuredRound publishes in structured mode (the JSON event
// format as the record value, one content-type header).
func eventkitStructuredRound(n int) (result, error) { return eventkitMode(n, true) }

func eventkitMode(n int, structured bool) (result, error) {
	name := "eventkit kafka"
	if structured {
		name = "eventkit-structured kafka"
	}
	c, brokers, err := cluster()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	var opts []kafka.Option
	if structured {
		opts = append(opts, kafka.WithMode(eventkit.Structured))
	}
	ctx := context.Background()
	tr, err := kafka.Dial(ctx, strings.Join(brokers, ","), opts...)
	if err != nil {
		return result{}, err
	}
	defer tr.Close()
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
	start := begin(name, "produce")
	for i := 0; i < n; i += batch {
		if err := tr.PublishAsync(ctx, topicName, evs[i:min(i+batch, n)], nil); err != nil {
			return result{}, err
		}
	}
	if err := tr.Flush(ctx); err != nil {
		return result{}, err
	}
	produced, producedCPU := start.end(name, "produce", n)

	start = begin(name, "consume")
	sub, err := tr.Subscribe(ctx, topicName, eventkit.WithGroup("bench-eventkit"), eventkit.FromStart())
	if err != nil {
		return result{}, err
	}
	var first time.Duration
	for got := 0; got < n; got++ {
		m, ok := <-sub.Messages()
		if !ok {
			return result{}, fmt.Errorf("subscription ended after %d: %v", got, sub.Err())
		}
		if got == 0 {
			first = time.Since(start.wall)
		}
		_ = m.Ack()
	}
	consumed, consumedCPU := start.end(name, "consume", n)
	_ = sub.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU, first), nil
}

func franzRound(n int) (result, error) { return franz(n, false, false) }

// franzHeadersRound produces records that carry the same CloudEvents
// binary-mode headers as eventkit's (the like-for-like baseline); the
// consumer parses them into the same event eventkit hands out (fromHeaders),
// unless -bare-headers.
func franzHeadersRound(n int) (result, error) { return franz(n, true, false) }

// franzSettingsRound is franzHeadersRound with the client settings eventkit
// uses (see franz).
func franzSettingsRound(n int) (result, error) { return franz(n, true, true) }

// franz runs raw franz-go. With settings it uses the client settings of
// eventkit's transport instead of franz-go's defaults: a producer buffer of
// 50,000 records; a consumer with read_committed, no auto-commit, the
// sticky balancer, a 500 ms fetch max wait and polls of at most 256
// records.
func franz(n int, headers, settings bool) (result, error) {
	name := "raw franz-go"
	switch {
	case settings:
		name = "raw+hdr+settings franz-go"
	case headers:
		name = "raw+headers franz-go"
	}
	c, brokers, err := cluster()
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	ctx := context.Background()
	popts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if settings {
		popts = append(popts, kgo.MaxBufferedRecords(kafka.DefaultMaxInFlight))
	}
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return result{}, err
	}
	defer prod.Close()
	// Like eventkit's events, the ids are made before the clock starts;
	// the records, as eventkit's, are made while it runs.
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	start := begin(name, "produce")
	var perr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil && perr == nil {
			perr = err
		}
	}
	for i := range n {
		r := &kgo.Record{Topic: topicName, Value: payload}
		if headers {
			r.Headers = []kgo.RecordHeader{
				{Key: "ce_specversion", Value: hdrVersion}, {Key: "ce_id", Value: []byte(ids[i])},
				{Key: "ce_source", Value: hdrSource}, {Key: "ce_type", Value: hdrType},
				{Key: "content-type", Value: hdrContentType},
			}
		}
		prod.Produce(ctx, r, promise)
	}
	if err := prod.Flush(ctx); err != nil {
		return result{}, err
	}
	if perr != nil {
		return result{}, perr
	}
	produced, producedCPU := start.end(name, "produce", n)

	start = begin(name, "consume")
	copts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topicName), kgo.ConsumerGroup("bench-franz"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if settings {
		copts = append(copts, kgo.DisableAutoCommit(), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.Balancers(kgo.StickyBalancer()), kgo.FetchMaxWait(500*time.Millisecond),
			kgo.HeartbeatInterval(kafka.DefaultHeartbeatInterval), kgo.MetadataMaxAge(kafka.DefaultMetadataMaxAge))
	}
	cons, err := kgo.NewClient(copts...)
	if err != nil {
		return result{}, err
	}
	got := 0
	var first time.Duration
	for got < n {
		var fs kgo.Fetches
		if settings {
			fs = cons.PollRecords(ctx, kafka.DefaultBuffer)
		} else {
			fs = cons.PollFetches(ctx)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return result{}, errs[0].Err
		}
		if got == 0 && fs.NumRecords() > 0 {
			first = time.Since(start.wall)
		}
		if headers && bareHeaders {
			got += fs.NumRecords()
			continue
		}
		for it := fs.RecordIter(); !it.Done(); got++ {
			r := it.Next()
			if headers {
				e, err := fromHeaders(r)
				if err != nil {
					return result{}, err
				}
				if e.ID() == "" {
					return result{}, fmt.Errorf("record %d/%d has no id", r.Partition, r.Offset)
				}
			}
		}
	}
	consumed, consumedCPU := start.end(name, "consume", n)
	_ = cons.CommitUncommittedOffsets(ctx)
	cons.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU, first), nil
}

// The header values that every record of the raw+headers peers shares.
var (
	hdrVersion     = []byte("1.0")
	hdrSource      = []byte("urn:bench")
	hdrType        = []byte("bench.event")
	hdrContentType = []byte("application/json")
)

// bareHeaders (-bare-headers) makes the raw+headers peers count the
// records they read without decoding their headers (the peer of the
// reports before 2026-12-03 evening).
var bareHeaders bool

// fromHeaders is what a user of raw franz-go writes to get the event that
// eventkit hands out from a binary-mode record: the attributes parsed from
// the headers into the same fields (the source is a URI reference), the
// value as the data. It sets the context's fields directly (the SDK's
// setters and its Kafka binding cost more) and does not validate the
// event nor copy its data, which eventkit does.
func fromHeaders(r *kgo.Record) (event.Event, error) {
	ec := new(event.EventContextV1)
	for _, h := range r.Headers {
		switch h.Key {
		case "ce_specversion":
			if string(h.Value) != event.CloudEventsVersionV1 {
				return event.Event{}, fmt.Errorf("specversion %q", h.Value)
			}
		case "ce_id":
			ec.ID = string(h.Value)
		case "ce_type":
			ec.Type = string(h.Value)
		case "ce_source":
			ref := types.ParseURIRef(string(h.Value))
			if ref == nil {
				return event.Event{}, fmt.Errorf("source %q is not a URI reference", h.Value)
			}
			ec.Source = *ref
		case "content-type":
			ct := string(h.Value)
			ec.DataContentType = &ct
		}
	}
	return event.Event{Context: ec, DataEncoded: r.Value}, nil
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
	start := begin("watermill-kafka", "produce")
	for i := 0; i < n; i += batch {
		if err := pub.Publish(topicName, msgs[i:min(i+batch, n)]...); err != nil {
			return result{}, err
		}
	}
	produced, producedCPU := start.end("watermill-kafka", "produce", n)

	start = begin("watermill-kafka", "consume")
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
	var first time.Duration
	for got := 0; got < n; got++ {
		m, ok := <-ch
		if !ok {
			cancel()
			return result{}, fmt.Errorf("watermill subscription ended after %d", got)
		}
		if got == 0 {
			first = time.Since(start.wall)
		}
		m.Ack()
	}
	consumed, consumedCPU := start.end("watermill-kafka", "consume", n)
	cancel()
	_ = sub.Close()
	return rates(n, produced, consumed, producedCPU, consumedCPU, first), nil
}
