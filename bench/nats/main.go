// Command nats compares eventkit's NATS JetStream transport with raw
// nats.go jetstream (async publish, pull consumer) and with Watermill's NATS
// JetStream pub/sub (watermill-nats/v2, pkg/nats) in one process and one
// run: an embedded JetStream server listening on loopback, file storage,
// 256-byte data. Each system first publishes every event, then a durable
// consumer reads them all from the start, acking each. Each round of each
// system uses a fresh stream; the systems take turns, each round starting
// with the next one, after warm-up rounds that are not counted. It prints
// the median of the rounds per system, and the ratio of the first system
// to each other one round by round, with their median and spread (min and
// max): on a machine whose load changes, the ratio of two runs next to
// each other is steadier than the ratio of medians taken over the whole
// run.
//
//	cd bench/nats && go run . -n 100000 -rounds 9
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
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/benchkit"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/nats/natsserver"
)

var payload = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

// result is a round's rates in events per second, and the process's CPU
// time per event while publishing and while consuming (client and
// embedded server together: steadier than rates on a shared machine).
type result struct{ pub, sub, pubCPU, subCPU float64 }

// profPrefix is -cpuprofile; profRound the round being run.
var (
	profPrefix string
	profRound  int
	ekBuffer   int // -ekbuffer
)

// clock measures one timed phase: wall and process CPU time from its
// start, and with -cpuprofile a CPU profile of the phase alone, written to
// PREFIX.SYSTEM.PHASE.rROUND.prof.
type clock struct {
	wall time.Time
	cpu  time.Duration
	prof *os.File
}

func startClock(system, phase string) clock {
	var c clock
	if profPrefix != "" {
		f, err := os.Create(fmt.Sprintf("%s.%s.%s.r%d.prof", profPrefix, system, phase, profRound+1))
		benchkit.Check(err)
		benchkit.Check(pprof.StartCPUProfile(f))
		c.prof = f
	}
	c.wall, c.cpu = time.Now(), benchkit.CPUTime()
	return c
}

// stop returns the rate of n events in events per second and the CPU
// time per event in microseconds.
func (c clock) stop(n int) (rate, cpu float64) {
	wall, used := time.Since(c.wall), benchkit.CPUTime()-c.cpu
	if c.prof != nil {
		pprof.StopCPUProfile()
		benchkit.Check(c.prof.Close())
	}
	return float64(n) / wall.Seconds(), float64(used.Nanoseconds()) / 1e3 / float64(n)
}

func main() {
	n := flag.Int("n", 100000, "events per round")
	rounds := flag.Int("rounds", 3, "measured rounds per system")
	warmup := flag.Int("warmup", 1, "rounds run first and not counted (the file store, the page cache and the heap settle)")
	batch := flag.Int("batch", 0, "events per Publish call for eventkit and Watermill (0: all in one call, like raw's one async burst)")
	flag.IntVar(&ekBuffer, "ekbuffer", 0, "eventkit's subscription buffer and fetch batch (nats.WithSubscriptionBuffer, nats.WithFetchBatch); 0: the transport's defaults")
	systems := flag.String("systems", "eventkit,raw,watermill", "systems to run, the first compared with each other one: eventkit, eventkit@SIZE (a subscription buffer and fetch batch of SIZE), raw, rawce, rawpush, watermill")
	flag.StringVar(&profPrefix, "cpuprofile", "", "write a CPU profile of each timed phase to PREFIX.SYSTEM.PHASE.rROUND.prof")
	flag.Parse()
	if *batch <= 0 {
		*batch = *n
	}

	dir, err := os.MkdirTemp("", "bench-nats-")
	benchkit.Check(err)
	defer os.RemoveAll(dir)
	srv, err := natsserver.Run(natsserver.WithStoreDir(dir), natsserver.WithListen("127.0.0.1", 0))
	benchkit.Check(err)
	defer srv.Shutdown(context.Background())
	url := srv.ClientURL()

	fmt.Printf("nats bench: %d events of %d bytes, %d rounds (+%d warm-up), file storage, embedded nats-server on %s, GOMAXPROCS=%d\n",
		*n, len(payload), *rounds, *warmup, url, runtime.GOMAXPROCS(0))
	names := strings.Split(*systems, ",")
	res := map[string][]result{}
	for r := 0; r < *warmup+*rounds; r++ {
		profRound = r
		// Each round starts with another system, so that no system always
		// runs first (on a fresh heap) or right after the same neighbour.
		for k := range names {
			name := names[(r+k)%len(names)]
			x := runSystem(name, url, *n, *batch, r)
			label := "round " + strconv.Itoa(r-*warmup+1)
			if r < *warmup {
				label = "warm-up " + strconv.Itoa(r+1)
			}
			fmt.Printf("  %-10s %-10s publish %9.0f events/s   consume %9.0f events/s   CPU publish %5.1f consume %5.1f µs/event\n", label, name, x.pub, x.sub, x.pubCPU, x.subCPU)
			if r >= *warmup {
				res[name] = append(res[name], x)
			}
		}
	}
	report(names, res)
}

// runSystem runs one round of the named system.
func runSystem(name, url string, n, batch, round int) result {
	switch name {
	case "eventkit":
		return runEventkit(name, url, n, batch, round, ekBuffer)
	case "raw":
		return runRaw(url, n, round, false, false)
	case "rawce":
		return runRaw(url, n, round, true, false)
	case "rawpush":
		return runRaw(url, n, round, false, true)
	case "watermill":
		return runWatermill(url, n, batch, round)
	}
	if b, ok := strings.CutPrefix(name, "eventkit@"); ok {
		size, err := strconv.Atoi(b)
		if err == nil && size > 0 {
			return runEventkit(name, url, n, batch, round, size)
		}
	}
	benchkit.Check(fmt.Errorf("unknown system %q", name))
	return result{}
}

// measures names the four figures of a result, in the order of get.
var measures = []string{"publish", "consume", "publish-cpu", "consume-cpu"}

func (x result) get(i int) float64 { return [...]float64{x.pub, x.sub, x.pubCPU, x.subCPU}[i] }

// report prints the medians per system, then for the first system against
// each other one the ratio of every measure round by round (the two ran
// minutes apart at most, so the load of a shared machine changes less
// between them than over the run) with its median and spread, and the
// RESULT and RATIO lines: RESULT the medians, RATIO the median of the
// per-round ratios, with MEASURE-min and MEASURE-max their spread.
func report(names []string, res map[string][]result) {
	fmt.Println("medians:")
	for _, name := range names {
		m := medians(res[name])
		fmt.Printf("  %-10s publish %9.0f events/s   consume %9.0f events/s   CPU publish %5.1f consume %5.1f µs/event\n", name, m[0], m[1], m[2], m[3])
	}
	type ratio struct {
		peer, measure string
		med, lo, hi   float64
	}
	var ratios []ratio
	first := names[0]
	for _, peer := range names[1:] {
		fmt.Printf("%s / %s, per round (median, min–max over %d rounds):\n", first, peer, len(res[first]))
		for i, measure := range measures {
			var rs []float64
			for r := range min(len(res[first]), len(res[peer])) {
				if p := res[peer][r].get(i); p != 0 {
					rs = append(rs, res[first][r].get(i)/p)
				}
			}
			if len(rs) == 0 {
				continue
			}
			q := ratio{peer: peer, measure: measure, med: benchkit.Median(rs), lo: slices.Min(rs), hi: slices.Max(rs)}
			ratios = append(ratios, q)
			fmt.Printf("  %-12s %.3f  (%.3f–%.3f)  rounds: %s\n", measure, q.med, q.lo, q.hi, fmtRatios(rs))
		}
	}
	for _, name := range names {
		m := medians(res[name])
		for i, measure := range measures {
			unit := "events/s"
			if strings.HasSuffix(measure, "-cpu") {
				unit = "µs/event"
			}
			benchkit.Result(name, measure, m[i], unit)
		}
	}
	for _, q := range ratios {
		benchkit.Ratio(first, q.peer, q.measure, q.med, 1)
		benchkit.Ratio(first, q.peer, q.measure+"-min", q.lo, 1)
		benchkit.Ratio(first, q.peer, q.measure+"-max", q.hi, 1)
	}
}

// medians returns the median of each measure over rounds.
func medians(rounds []result) [4]float64 {
	var m [4]float64
	for i := range m {
		xs := make([]float64, len(rounds))
		for r, x := range rounds {
			xs[r] = x.get(i)
		}
		m[i] = benchkit.Median(xs)
	}
	return m
}

func fmtRatios(rs []float64) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.FormatFloat(r, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

func deleteStream(nc *nats.Conn, name string) {
	js, err := jetstream.New(nc)
	benchkit.Check(err)
	_ = js.DeleteStream(context.Background(), name)
}

// runEventkit runs one round of eventkit, with a subscription buffer and
// fetch batch of buffer (0: the transport's defaults); system names the
// round's streams and profiles ("eventkit", or "eventkit@SIZE" to compare
// buffer sizes in one run).
func runEventkit(system, url string, n, batch, round, buffer int) result {
	ctx := context.Background()
	nc, err := nats.Connect(url)
	benchkit.Check(err)
	defer nc.Close()
	tag := strconv.Itoa(round) + "_" + strconv.Itoa(buffer)
	stream := "EK_BENCH_" + tag
	subject := "ekbench" + tag
	opts := []eknats.Option{eknats.WithStream(eknats.StreamConfig{Name: stream, Subjects: []string{subject + ".>"}})}
	if buffer > 0 {
		opts = append(opts, eknats.WithSubscriptionBuffer(buffer), eknats.WithFetchBatch(buffer))
	}
	tr, err := eknats.New(nc, opts...)
	benchkit.Check(err)
	benchkit.Check(tr.EnsureStreams(ctx)) // New does no I/O: make the stream before the clock starts
	defer deleteStream(nc, stream)
	defer tr.Close()
	events := make([]event.Event, n)
	for i := range events {
		e := event.New()
		e.SetID("ev-" + strconv.Itoa(i))
		e.SetSource("urn:bench")
		e.SetType("bench.event")
		benchkit.Check(e.SetData("application/json", payload))
		events[i] = e
	}
	topic := subject + ".events"
	c := startClock(system, "publish")
	for i := 0; i < n; i += batch {
		benchkit.Check(tr.Publish(ctx, topic, events[i:min(i+batch, n)]...))
	}
	pub, pubCPU := c.stop(n)

	c = startClock(system, "consume")
	s, err := tr.Subscribe(ctx, topic, eventkit.WithGroup("bench"), eventkit.FromStart())
	benchkit.Check(err)
	for got := 0; got < n; got++ {
		m := <-s.Messages()
		benchkit.Check(m.Ack())
	}
	sub, subCPU := c.stop(n)
	benchkit.Check(s.Close())
	return result{pub, sub, pubCPU, subCPU}
}

// runRaw publishes with nats.go jetstream's PublishAsync and consumes with
// a pull consumer's Messages iterator. With ce, each message carries the
// same CloudEvents binary-mode headers as eventkit's (built before the
// clock starts), which isolates the client-side cost of eventkit from the
// server-side cost of the binding's headers.
//
// With push, the consumer is a durable push consumer read through
// nats.go's legacy JetStream API (a channel subscription, ManualAck), as
// Watermill's is: the fastest raw nats.go consumer may be either.
func runRaw(url string, n, round int, ce, push bool) result {
	ctx := context.Background()
	nc, err := nats.Connect(url)
	benchkit.Check(err)
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	benchkit.Check(err)
	tag := strconv.Itoa(round) + strconv.FormatBool(ce) + strconv.FormatBool(push)
	stream := "RAW_BENCH_" + tag
	subject := "rawbench" + tag
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject + ".>"}, Storage: jetstream.FileStorage})
	benchkit.Check(err)
	defer deleteStream(nc, stream)
	topic := subject + ".events"
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := "ev-" + strconv.Itoa(i)
		if ce {
			e := event.New()
			e.SetID(id)
			e.SetSource("urn:bench")
			e.SetType("bench.event")
			benchkit.Check(e.SetData("application/json", payload))
			m, err := eknats.EncodeMsg(topic, e, eventkit.Binary)
			benchkit.Check(err)
			m.Header.Set(nats.MsgIdHdr, eknats.DefaultMsgID(topic, id, "urn:bench"))
			msgs[i] = m
		} else {
			msgs[i] = &nats.Msg{Subject: topic, Data: payload, Header: nats.Header{nats.MsgIdHdr: []string{id}}}
		}
	}
	system := "raw"
	if ce {
		system = "rawce"
	}
	if push {
		system = "rawpush"
	}
	c := startClock(system, "publish")
	futures := make([]jetstream.PubAckFuture, n)
	for i := 0; i < n; i++ {
		f, err := js.PublishMsgAsync(msgs[i], jetstream.WithStallWait(10*time.Second))
		benchkit.Check(err)
		futures[i] = f
	}
	<-js.PublishAsyncComplete()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			benchkit.Check(err)
		}
	}
	pub, pubCPU := c.stop(n)

	c = startClock(system, "consume")
	var stop func()
	if push {
		stop = consumePush(nc, topic, n)
	} else {
		stop = consumePull(ctx, js, stream, topic, n)
	}
	sub, subCPU := c.stop(n)
	stop()
	return result{pub, sub, pubCPU, subCPU}
}

// consumePull reads and acks n messages through a durable pull consumer's
// Messages iterator, and returns the function that stops it.
func consumePull(ctx context.Context, js jetstream.JetStream, stream, topic string, n int) (stop func()) {
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubject: topic,
	})
	benchkit.Check(err)
	it, err := cons.Messages()
	benchkit.Check(err)
	for got := 0; got < n; got++ {
		msg, err := it.Next()
		benchkit.Check(err)
		benchkit.Check(msg.Ack())
	}
	return it.Stop
}

// consumePush reads and acks n messages through a durable push consumer
// (nats.go's legacy JetStream API, a channel subscription with ManualAck,
// the server's default MaxAckPending, as Watermill's subscriber makes it),
// and returns the function that ends the subscription.
func consumePush(nc *nats.Conn, topic string, n int) (stop func()) {
	js, err := nc.JetStream()
	benchkit.Check(err)
	ch := make(chan *nats.Msg, 4096)
	sub, err := js.ChanSubscribe(topic, ch, nats.Durable("benchpush"), nats.ManualAck(), nats.DeliverAll(), nats.AckExplicit())
	benchkit.Check(err)
	for got := 0; got < n; got++ {
		benchkit.Check((<-ch).Ack())
	}
	return func() { _ = sub.Unsubscribe() }
}

func runWatermill(url string, n, batch, round int) result {
	logger := watermill.NopLogger{}
	topic := "WM_BENCH_" + strconv.Itoa(round) // also the stream's name and subject
	jsCfg := wmnats.JetStreamConfig{
		AutoProvision: true,
		DurablePrefix: "bench",
		AckAsync:      true, // Watermill's fastest ack mode
		SubscribeOptions: []nats.SubOpt{
			nats.DeliverAll(), nats.AckExplicit(),
		},
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: url, Marshaler: &wmnats.NATSMarshaler{}, JetStream: jsCfg}, logger)
	benchkit.Check(err)
	defer pub.Close()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage("ev-"+strconv.Itoa(i), payload)
	}
	c := startClock("watermill", "publish")
	for i := 0; i < n; i += batch {
		benchkit.Check(pub.Publish(topic, msgs[i:min(i+batch, n)]...))
	}
	pubRate, pubCPU := c.stop(n)

	c = startClock("watermill", "consume")
	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL: url, Unmarshaler: &wmnats.NATSMarshaler{}, JetStream: jsCfg,
		SubscribersCount: 1, AckWaitTimeout: 30 * time.Second, CloseTimeout: 10 * time.Second,
	}, logger)
	benchkit.Check(err)
	ch, err := sub.Subscribe(context.Background(), topic)
	benchkit.Check(err)
	for got := 0; got < n; got++ {
		m := <-ch
		m.Ack()
	}
	subRate, subCPU := c.stop(n)
	benchkit.Check(sub.Close())
	nc, err := nats.Connect(url)
	benchkit.Check(err)
	deleteStream(nc, topic)
	nc.Close()
	return result{pubRate, subRate, pubCPU, subCPU}
}
