// Command outbox-bench measures eventkit's PostgreSQL queue against
// Watermill's SQL pub/sub (watermill-sql v3, PostgreSQL schema) on the same
// database in the same run, and the outbox relay's throughput and
// commit-to-publish latency to the memory bus.
//
//	go run . -url postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
package main

import (
	"context"
	stdsql "database/sql"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/benchkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/postgres/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
)

var (
	url        = flag.String("url", envOr("EVENTKIT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL URL")
	n          = flag.Int("n", 20000, "events for the queue publish/consume runs")
	batch      = flag.Int("batch", 50, "events per Publish call")
	publishers = flag.Int("publishers", 4, "concurrent publishers")
	relayN     = flag.Int("relay-n", 50000, "events for the relay throughput run")
	latN       = flag.Int("lat-n", 1000, "events for the commit-to-publish latency run")
	only       = flag.String("only", "", "run only: queue, relay or latency")
	buffer     = flag.Int("buffer", 1024, "eventkit subscription buffer")
	qbatch     = flag.Int("qbatch", 500, "eventkit queue claim batch")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile")
	verbose    = flag.Bool("v", false, "print where the relay's time goes")
	rounds     = flag.Int("rounds", 3, "rounds of the queue comparison (medians are reported)")
	peer       = flag.Bool("peer", true, "run watermill-sql in each round (false: eventkit only, for before/after comparisons of eventkit itself)")
)

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func payload() []byte {
	// ~200 bytes of JSON, the same for every system.
	return []byte(`{"order":"o-12345","customer":"c-987","amount":1234.5,"currency":"EUR","items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}],"note":"benchmark payload of about two hundred bytes"}`)
}

func newEvent(i int) event.Event {
	e := event.New()
	e.SetID("ev-" + strconv.Itoa(i))
	e.SetSource("urn:bench")
	e.SetType("bench.order")
	_ = e.SetData("application/json", payload())
	return e
}

func main() {
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, *url)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	db, err := stdsql.Open("pgx", *url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if *only == "" || *only == "queue" {
		var ekP, wmP, ekS, wmS, rP, rS []float64
		for r := range *rounds {
			sfx := suffix + strconv.Itoa(r)
			var a, b, c, d float64
			// Alternate which system goes first, so that neither always
			// meets the warmer cache or the quieter machine.
			switch {
			case !*peer:
				a, c = benchEventkitQueue(ctx, pool, sfx)
				b, d = 1, 1
			case r%2 == 0:
				a, c = benchEventkitQueue(ctx, pool, sfx)
				b, d = benchWatermill(ctx, db, sfx)
			default:
				b, d = benchWatermill(ctx, db, sfx)
				a, c = benchEventkitQueue(ctx, pool, sfx)
			}
			fmt.Printf("round %d: publish eventkit %8.0f/s watermill-sql %8.0f/s (%.2fx); consume eventkit %8.0f/s watermill-sql %8.0f/s (%.2fx)\n",
				r+1, a, b, a/b, c, d, c/d)
			ekP, wmP, ekS, wmS = append(ekP, a), append(wmP, b), append(ekS, c), append(wmS, d)
			rP, rS = append(rP, a/b), append(rS, c/d)
		}
		fmt.Printf("queue publish  (%d events, %d publishers, %d per call), medians of %d rounds: eventkit %8.0f events/s   watermill-sql %8.0f events/s   ratio %.2fx\n",
			*n, *publishers, *batch, *rounds, benchkit.Median(ekP), benchkit.Median(wmP), benchkit.Median(rP))
		fmt.Printf("queue consume  (%d events, one consumer, ack each), medians of %d rounds:      eventkit %8.0f events/s   watermill-sql %8.0f events/s   ratio %.2fx\n",
			*n, *rounds, benchkit.Median(ekS), benchkit.Median(wmS), benchkit.Median(rS))
		fmt.Printf("eventkit queue CPU of this process (publish + consume), median of %d rounds: %.1f µs/event\n", *rounds, benchkit.Median(ekCPU))
		benchkit.Result("eventkit", "queue-publish", benchkit.Median(ekP), "events/s")
		benchkit.Result("eventkit", "queue-consume", benchkit.Median(ekS), "events/s")
		benchkit.Result("eventkit", "queue-cpu", benchkit.Median(ekCPU), "µs/event")
		if *peer {
			benchkit.Result("watermill-sql", "queue-publish", benchkit.Median(wmP), "events/s")
			benchkit.Result("watermill-sql", "queue-consume", benchkit.Median(wmS), "events/s")
			benchkit.Ratio("eventkit", "watermill-sql", "queue-publish", benchkit.Median(rP), 1)
			benchkit.Ratio("eventkit", "watermill-sql", "queue-consume", benchkit.Median(rS), 1)
		}
	}
	if *only == "" || *only == "relay" {
		var rates, perCPU []float64
		for r := range *rounds {
			rate, cpu := benchRelay(ctx, pool, suffix+"r"+strconv.Itoa(r))
			rates, perCPU = append(rates, rate), append(perCPU, float64(*relayN)/cpu.Seconds())
			fmt.Printf("round %d: relay %8.0f events/s (%8.0f events per CPU-second of this process)\n", r+1, rate, float64(*relayN)/cpu.Seconds())
		}
		fmt.Printf("outbox relay   (%d events pre-written, outbox -> memory bus), medians of %d rounds: %8.0f events/s, %8.0f events per CPU-second of the relay process\n",
			*relayN, *rounds, benchkit.Median(rates), benchkit.Median(perCPU))
		benchkit.Result("eventkit", "relay", benchkit.Median(rates), "events/s")
		benchkit.Result("eventkit", "relay-cpu", 1e6/benchkit.Median(perCPU), "µs/event")
	}
	if *only == "" || *only == "latency" {
		p50, p99 := benchLatency(ctx, pool, suffix)
		fmt.Printf("outbox latency (%d single-event transactions, commit -> published on the bus): p50 %s  p99 %s\n", *latN, p50, p99)
		benchkit.Result("eventkit", "relay-latency-p50", float64(p50)/1e3, "µs")
		benchkit.Result("eventkit", "relay-latency-p99", float64(p99)/1e3, "µs")
	}
}

func publishAll(total, pubs, per int, publish func(from, to int) error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	each := total / pubs
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p * each; i < (p+1)*each; i += per {
				if err := publish(i, min(i+per, (p+1)*each)); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// ekCPU is this process's CPU time per event (µs) of each eventkit queue
// round, publish and consume together.
var ekCPU []float64

func benchEventkitQueue(ctx context.Context, pool *pgxpool.Pool, suffix string) (pubRate, subRate float64) {
	table := "bench_ekq_" + suffix
	q, err := pgqueue.New(pool, pgqueue.WithTable(table), pgqueue.WithBatchSize(*qbatch), pgqueue.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	if err := q.Migrate(ctx); err != nil { // before the clock starts, as New did before it stopped doing I/O
		log.Fatal(err)
	}
	defer func() {
		_ = q.Close()
		_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_groups, %s_work, %s_claims`, table, table, table, table))
	}()
	total := *n / *publishers * *publishers
	cpu0 := benchkit.CPUTime()
	el := publishAll(total, *publishers, *batch, func(from, to int) error {
		evs := make([]event.Event, 0, to-from)
		for i := from; i < to; i++ {
			evs = append(evs, newEvent(i))
		}
		return q.Publish(ctx, "bench.orders", evs...)
	})
	pubRate = float64(total) / el.Seconds()
	start := time.Now()
	s, err := q.Subscribe(ctx, "bench.orders", eventkit.WithGroup("bench"), eventkit.FromStart(), eventkit.WithBuffer(*buffer))
	if err != nil {
		log.Fatal(err)
	}
	for got := 0; got < total; got++ {
		m := <-s.Messages()
		if err := m.Ack(); err != nil {
			log.Fatal(err)
		}
	}
	subRate = float64(total) / time.Since(start).Seconds()
	_ = s.Close()
	ekCPU = append(ekCPU, float64((benchkit.CPUTime()-cpu0).Microseconds())/float64(total))
	return pubRate, subRate
}

func benchWatermill(ctx context.Context, db *stdsql.DB, suffix string) (pubRate, subRate float64) {
	topic := "bench_wm_" + suffix
	logger := watermill.NopLogger{}
	schema := wsql.DefaultPostgreSQLSchema{}
	pub, err := wsql.NewPublisher(db, wsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		_ = pub.Close()
		_, _ = db.ExecContext(ctx, `DROP TABLE IF EXISTS "watermill_`+topic+`"`)
		_, _ = db.ExecContext(ctx, `DROP TABLE IF EXISTS "watermill_offsets_`+topic+`"`)
	}()
	// Create the schema before timing.
	if err := pub.Publish(topic, message.NewMessage("warmup", payload())); err != nil {
		log.Fatal(err)
	}
	total := *n / *publishers * *publishers
	el := publishAll(total, *publishers, *batch, func(from, to int) error {
		msgs := make([]*message.Message, 0, to-from)
		for i := from; i < to; i++ {
			msgs = append(msgs, message.NewMessage("ev-"+strconv.Itoa(i), payload()))
		}
		return pub.Publish(topic, msgs...)
	})
	pubRate = float64(total) / el.Seconds()
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:    "bench",
		SchemaAdapter:    schema,
		OffsetsAdapter:   wsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true,
		PollInterval:     10 * time.Millisecond,
	}, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	msgs, err := sub.Subscribe(sctx, topic)
	if err != nil {
		log.Fatal(err)
	}
	for got := 0; got < total+1; got++ { // +1: the warm-up message
		m := <-msgs
		m.Ack()
	}
	subRate = float64(total+1) / time.Since(start).Seconds()
	return pubRate, subRate
}

func newOutbox(ctx context.Context, pool *pgxpool.Pool, table string) *postgres.Outbox {
	o, err := postgres.NewOutbox(pool, postgres.OutboxTable(table))
	if err != nil {
		log.Fatal(err)
	}
	if err := o.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	return o
}

func dropOutbox(ctx context.Context, pool *pgxpool.Pool, table string) {
	_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_leases, %s_relays, %s_archive`, table, table, table, table))
}

func benchRelay(ctx context.Context, pool *pgxpool.Pool, suffix string) (float64, time.Duration) {
	table := "bench_ekob_" + suffix
	o := newOutbox(ctx, pool, table)
	defer dropOutbox(ctx, pool, table)
	const perTx = 100
	for i := 0; i < *relayN; i += perTx {
		evs := make([]event.Event, 0, perTx)
		for j := i; j < min(i+perTx, *relayN); j++ {
			e := newEvent(j)
			e.SetExtension("partitionkey", "order-"+strconv.Itoa(j%1000))
			evs = append(evs, e)
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return o.Write(ctx, tx, "bench.orders", evs...) }); err != nil {
			log.Fatal(err)
		}
	}
	bus := memory.New()
	defer bus.Close()
	s, err := bus.Subscribe(ctx, "bench.>", eventkit.WithBuffer(4096))
	if err != nil {
		log.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	ts := &timedStore{Outbox: o}
	r, err := outbox.NewRelay(ts, bus, outbox.WithBatchSize(1000))
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	start, cpu0 := time.Now(), benchkit.CPUTime()
	go func() { defer close(done); _ = r.Run(rctx) }()
	for got := 0; got < *relayN; got++ {
		m := <-s.Messages()
		_ = m.Ack()
	}
	el, cpu := time.Since(start), benchkit.CPUTime()-cpu0
	cancel()
	<-done
	if *verbose {
		fmt.Printf("relay time in the store: fetch %s (%d calls), mark %s (%d calls), of %s\n",
			time.Duration(ts.fetch.Load()), ts.fetches.Load(), time.Duration(ts.mark.Load()), ts.marks.Load(), el)
	}
	return float64(*relayN) / el.Seconds(), cpu
}

func benchLatency(ctx context.Context, pool *pgxpool.Pool, suffix string) (p50, p99 time.Duration) {
	table := "bench_eklat_" + suffix
	o := newOutbox(ctx, pool, table)
	defer dropOutbox(ctx, pool, table)
	bus := memory.New()
	defer bus.Close()
	s, err := bus.Subscribe(ctx, "bench.>", eventkit.WithBuffer(4096))
	if err != nil {
		log.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r, err := outbox.NewRelay(o, bus)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	var sent sync.Map
	lat := make([]time.Duration, 0, *latN)
	var recvDone = make(chan struct{})
	var pending atomic.Int64
	go func() {
		defer close(recvDone)
		for len(lat) < *latN {
			m := <-s.Messages()
			now := time.Now()
			_ = m.Ack()
			if v, ok := sent.Load(m.Event.ID()); ok {
				lat = append(lat, now.Sub(v.(time.Time)))
			}
			pending.Add(-1)
		}
	}()
	time.Sleep(500 * time.Millisecond) // relay claims its partitions
	for i := range *latN {
		e := newEvent(i)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := o.Write(ctx, tx, "bench.orders", e); err != nil {
				return err
			}
			sent.Store(e.ID(), time.Now()) // the commit starts now
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
		pending.Add(1)
		time.Sleep(2 * time.Millisecond) // ~ a few hundred transactions/s
	}
	<-recvDone
	cancel()
	<-done
	slices.Sort(lat)
	return lat[len(lat)/2].Round(10 * time.Microsecond), lat[len(lat)*99/100].Round(10 * time.Microsecond)
}

// timedStore measures the relay's time in the store.
type timedStore struct {
	*postgres.Outbox
	fetch, mark    atomic.Int64
	fetches, marks atomic.Int64
}

func (s *timedStore) Fetch(ctx context.Context, c []outbox.Cursor, limit int) ([]outbox.Record, error) {
	t := time.Now()
	defer func() { s.fetch.Add(int64(time.Since(t))); s.fetches.Add(1) }()
	return s.Outbox.Fetch(ctx, c, limit)
}

func (s *timedStore) MarkDelivered(ctx context.Context, owner string, recs []outbox.Record) error {
	t := time.Now()
	defer func() { s.mark.Add(int64(time.Since(t))); s.marks.Add(1) }()
	return s.Outbox.MarkDelivered(ctx, owner, recs)
}
